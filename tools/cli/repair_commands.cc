// itinera workflow retry|reset|signal|cancel|terminate|replay: the repairs,
// on one run (ID) or in bulk (--all with list filters, --dry-run, --rate).
// Only flag parsing and printing live here; what happens is tools/ops.
#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>

#include <unistd.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "cli/operator_read.h"
#include "client/client.h"
#include "common/payload.h"
#include "ops/operations.h"
#include "runtime/workflow_executor.h"

namespace itinera::cli {

namespace {

StatusOr<std::unique_ptr<Client>> Open(const std::string& db) {
  auto dsn = ResolveDsn(db);
  if (!dsn.ok()) return dsn.status();
  return Client::Connect(*dsn, &BuiltinRegistry());
}

// `bulk`: with --all, where a workflow type given as --type is a likely mistake.
StatusOr<v1::Payload> SignalInput(const std::string& type_name, const std::string& input, bool bulk) {
  if (type_name.empty()) {
    if (!input.empty() && input != "{}") {
      return Status::InvalidArgument("--type: give the signal's message type (e.g. itinera.example.v1.Approval) "
                                     "to send JSON input");
    }
    return v1::Payload();
  }
  const auto* d = google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(type_name);
  if (d == nullptr) {
    return Status::InvalidArgument(fmt::format(
        "--type: unknown message type \"{}\"{}", type_name,
        bulk ? " (--type is the signal input's protobuf message; select runs by workflow type with --workflow-type)"
             : ""));
  }
  google::protobuf::DynamicMessageFactory factory;
  std::unique_ptr<google::protobuf::Message> m(factory.GetPrototype(d)->New());
  if (!input.empty()) {
    if (Status s = CheckJsonSyntax(input, "--input"); !s.ok()) return s;
  }
  if (Status s = JsonToMessage(input, m.get(), "input"); !s.ok()) return s;
  v1::Payload p;
  p.set_encoding(std::string(kEncodingProtobuf));
  p.set_type_name(type_name);
  m->SerializeToString(p.mutable_data());
  return p;
}

StatusOr<v1::History> ReadHistoryFile(const std::string& path) {
  std::ifstream f(path);
  if (!f) return Status::InvalidArgument(fmt::format("--history: cannot read {}", path));
  std::stringstream ss;
  ss << f.rdbuf();
  v1::History h;
  google::protobuf::util::JsonParseOptions o;
  auto st = google::protobuf::util::JsonStringToMessage(ss.str(), &h, o);
  if (!st.ok()) return Status::InvalidArgument(fmt::format("--history: {}: {}", path, std::string(st.message())));
  return h;
}

// Which runs a command acts on: one ID (and --run), or --all with filters.
struct Target {
  std::string id;
  std::string run;
  bool all = false;
  bool all_runs = false;  // --all without a filter: every run, said on purpose
  bool yes = false;       // no confirmation on a terminal
  ListFlags filter;
  bool dry_run = false;
  double rate = 10;
};

// `type_flag`: the name of the workflow type filter; `signal` takes --type
// for its input's message type, so it filters with --workflow-type only.
void AddTargetFlags(CLI::App* cmd, Target& t, const std::string& type_flag) {
  cmd->add_option("id", t.id, "workflow id (or --all with filters)");
  cmd->add_option("--run", t.run, "run id (default: the current run)");
  cmd->add_flag("--all", t.all, "every run the filters match, instead of one id (needs a filter, or --all-runs)");
  cmd->add_flag("--all-runs", t.all_runs, "every run of every workflow, no filter (on purpose only)");
  cmd->add_flag("--yes,-y", t.yes, "with --all: do not ask for confirmation on a terminal");
  cmd->add_option("--status", t.filter.status, "with --all: Running, Completed, Failed, Canceled, Terminated, ...");
  cmd->add_option(type_flag, t.filter.type, "with --all: workflow type");
  cmd->add_option("--stuck-code", t.filter.stuck_code, "with --all: runs stuck with this code (ITN-NDE-001, ...)");
  cmd->add_flag("--stuck", t.filter.stuck, "with --all: runs stuck with any code");
  cmd->add_option("--started-after", t.filter.started_after, "with --all: RFC 3339 time or -30m, -2h, -1d");
  cmd->add_option("--started-before", t.filter.started_before, "with --all: RFC 3339 time or -30m, -2h, -1d");
  cmd->add_option("--id-prefix", t.filter.id_prefixes, "with --all: workflow ids starting with this (repeatable)");
  cmd->add_option("--booking", t.filter.booking, "with --all: the booking workflows of this booking id");
  cmd->add_flag("--dry-run", t.dry_run, "with --all: print what would be done, change nothing");
  cmd->add_option("--rate", t.rate, "with --all: at most this many runs per second (default 10)");
}

bool AnyFilter(const ListFlags& f) {
  return !f.status.empty() || !f.type.empty() || !f.stuck_code.empty() || f.stuck || !f.started_after.empty() ||
         !f.started_before.empty() || !f.id_prefixes.empty() || !f.booking.empty();
}

Status CheckTarget(const Target& t) {
  const bool all = t.all || t.all_runs;
  if (t.all_runs && AnyFilter(t.filter)) {
    return Status::InvalidArgument("--all-runs: acts on every run; use --all with the filters instead");
  }
  if (!t.all_runs && t.all && !AnyFilter(t.filter)) {
    return Status::InvalidArgument(
        "--all: give at least one filter (--status, --type, --id-prefix, --stuck, --started-before, ...), or "
        "--all-runs to act on every run");
  }
  if (all && !t.id.empty()) return Status::InvalidArgument("id: give a workflow id or --all, not both");
  if (!all && t.id.empty()) return Status::InvalidArgument("id: give a workflow id, or --all with filters");
  if (!all && AnyFilter(t.filter)) {
    return Status::InvalidArgument("--all: filters (--status, --type, --stuck-code, ...) select runs only with --all");
  }
  if (!all && t.dry_run) return Status::InvalidArgument("--dry-run: only with --all");
  if (!all && t.yes) return Status::InvalidArgument("--yes: only with --all");
  if (all && !t.run.empty()) return Status::InvalidArgument("--run: only with a workflow id, not with --all");
  return Status::Ok();
}

// How many runs `filter` matches now (every page).
StatusOr<int> CountMatches(Client& client, store::ListFilter filter) {
  filter.limit = store::kMaxListLimit;
  int count = 0;
  while (true) {
    std::string next;
    auto page = client.List(filter, &next);
    if (!page.ok()) return page.status();
    count += static_cast<int>(page->size());
    if (next.empty()) return count;
    filter.page_token = next;
  }
}

// On a terminal, shows how many runs a bulk operation is about to change and
// asks; elsewhere (scripts) it goes ahead. False: the operator said no.
bool Confirm(Client& client, const Target& t, const ops::Operation& operation, const store::ListFilter& filter,
             Status* error) {
  if (t.dry_run || t.yes || !isatty(STDIN_FILENO)) return true;
  auto count = CountMatches(client, filter);
  if (!count.ok()) {
    *error = count.status();
    return false;
  }
  if (*count == 0) return true;
  std::cout << fmt::format("{}: {} run{} match{}. Go ahead? [y/N] ", ops::OpName(operation.op), *count,
                           *count == 1 ? "" : "s", *count == 1 ? "es" : "")
            << std::flush;
  std::string answer;
  std::getline(std::cin, answer);
  return answer == "y" || answer == "Y" || answer == "yes";
}

// Runs `operation` on the target and prints one line per run and a summary.
// Returns the exit code.
int Execute(const std::string& db, Target t, const ops::Operation& operation,
            const std::function<void(Client&)>& single_done) {
  if (Status s = CheckTarget(t); !s.ok()) return Fail(s);
  t.all = t.all || t.all_runs;
  auto c = Open(db);
  if (!c.ok()) return Fail(c.status());
  if (!t.all) {
    std::string detail;
    Status s = ops::ApplyOne(**c, operation, t.id, t.run, &detail);
    if (!s.ok()) return Fail(s);
    if (single_done) {
      single_done(**c);
    } else {
      std::cout << fmt::format("{} {}{}{}\n", ops::OpName(operation.op), t.id, detail.empty() ? "" : ": ", detail);
    }
    return 0;
  }
  auto filter = BuildListFilter(t.filter, (*c)->store().Now());
  if (!filter.ok()) return Fail(filter.status());
  Status confirm_error;
  if (!Confirm(**c, t, operation, *filter, &confirm_error)) {
    if (!confirm_error.ok()) return Fail(confirm_error);
    std::cout << "nothing done\n";
    return 1;
  }
  ops::BulkOptions o;
  o.dry_run = t.dry_run;
  o.rate_per_second = t.rate;
  o.on_run = [&](const ops::RunOutcome& r) { std::cout << r.Line(operation.op) << "\n" << std::flush; };
  auto summary = ops::Bulk(**c, operation, *filter, o);
  if (!summary.ok()) return Fail(summary.status());
  std::cout << summary->Line() << "\n";
  return summary->failed > 0 ? 1 : 0;
}

void PrintReport(const ops::ReplayReport& r, bool with_id) {
  std::string who = with_id ? fmt::format("{} (run {}): ", r.workflow_id, r.run_id) : "";
  if (r.clean) {
    std::cout << fmt::format("{}replays cleanly: {} events of {}\n", who, r.events, r.workflow_type);
    return;
  }
  const ops::Divergence& d = *r.divergence;
  std::cout << fmt::format("{}divergence: {}\n", who, d.message);
  if (d.event_id > 0) std::cout << fmt::format("  event:    {}\n", d.event_id);
  if (!d.expected.empty()) std::cout << fmt::format("  expected: {}\n", d.expected);
  if (!d.actual.empty()) std::cout << fmt::format("  actual:   {}\n", d.actual);
  std::cout << fmt::format("  code:     {}\n", d.code);
}

}  // namespace

void AddRepairCommands(CLI::App& wf, std::string& db, int& exit_code) {
  // retry
  {
    auto* cmd = wf.add_subcommand("retry", "re-drive a run stuck on a failing workflow task (after a fix is deployed)");
    static Target t;
    AddTargetFlags(cmd, t, "--type");
    cmd->callback([&exit_code, &db] {
      exit_code = Execute(db, t, ops::Operation{.op = ops::Op::kRetry}, [](Client&) {
        std::cout << fmt::format("retried {}: its workflow task is due now\n", t.id);
      });
    });
  }
  // reset
  {
    auto* cmd = wf.add_subcommand(
        "reset", "continue a run in a new run from a completed workflow task; what came after runs again");
    static Target t;
    static std::string to, before_activity, reason;
    AddTargetFlags(cmd, t, "--type");
    cmd->add_option("--to", to, "a WorkflowTaskCompleted event id, or last-good");
    cmd->add_option("--before-activity", before_activity,
                    "the workflow task that first scheduled this activity type");
    cmd->add_option("--reason", reason, "why, recorded in both runs' histories");
    cmd->callback([&exit_code, &db] {
      auto target = ops::ParseResetTarget(to, before_activity);
      if (!target.ok()) { exit_code = Fail(target.status()); return; }
      exit_code = Execute(db, t, ops::Operation{.op = ops::Op::kReset, .reason = reason, .reset_target = *target},
                          nullptr);
    });
  }
  // signal
  {
    auto* cmd = wf.add_subcommand("signal", "send a signal");
    static Target t;
    static std::string name, input, type_name;
    AddTargetFlags(cmd, t, "--workflow-type");
    cmd->add_option("--name", name, "signal name")->required();
    cmd->add_option("--input", input, "signal input as JSON");
    cmd->add_option("--type", type_name, "protobuf message type of the input");
    cmd->callback([&exit_code, &db] {
      auto p = SignalInput(type_name, input, t.all || t.all_runs);
      if (!p.ok()) { exit_code = Fail(p.status()); return; }
      exit_code = Execute(db, t, ops::Operation{.op = ops::Op::kSignal, .signal_name = name, .signal_input = *p},
                          [](Client&) { std::cout << "signaled\n"; });
    });
  }
  // cancel / terminate
  for (const char* verb : {"cancel", "terminate"}) {
    bool cancel = std::string(verb) == "cancel";
    auto* cmd = wf.add_subcommand(verb, cancel ? "ask the workflow to cancel (it may compensate)"
                                               : "end the run now, running no more code");
    auto t = std::make_shared<Target>();
    auto reason = std::make_shared<std::string>();
    AddTargetFlags(cmd, *t, "--type");
    cmd->add_option("--reason", *reason, "why, recorded in history");
    cmd->callback([&exit_code, &db, t, reason, cancel] {
      ops::Operation op{.op = cancel ? ops::Op::kCancel : ops::Op::kTerminate, .reason = *reason};
      exit_code = Execute(db, *t, op,
                          [cancel](Client&) { std::cout << (cancel ? "cancel requested\n" : "terminated\n"); });
    });
  }
  // replay
  {
    auto* cmd = wf.add_subcommand("replay", "replay histories against this binary's code");
    static std::string id, run, file, type;
    static bool all = false;
    cmd->add_option("id", id, "workflow id");
    cmd->add_option("--run", run, "run id (default: current)");
    cmd->add_option("--history", file, "replay an exported history (history --json) instead");
    cmd->add_flag("--all", all, "every open run of --type");
    cmd->add_option("--type", type, "with --all: the workflow type");
    cmd->callback([&exit_code, &db] {
      if (all) {
        if (!id.empty() || !file.empty()) {
          exit_code = Fail(Status::InvalidArgument("--all: replays stored open runs; give no id or --history"));
          return;
        }
        auto c = Open(db);
        if (!c.ok()) { exit_code = Fail(c.status()); return; }
        auto reports = ops::ReplayAll(BuiltinRegistry(), **c, type);
        if (!reports.ok()) { exit_code = Fail(reports.status()); return; }
        int diverged = 0;
        for (const auto& r : *reports) {
          PrintReport(r, true);
          diverged += !r.clean;
        }
        std::cout << fmt::format("replay: {} open runs of {}, {} replay cleanly, {} diverge\n", reports->size(), type,
                                 reports->size() - diverged, diverged);
        if (diverged > 0) exit_code = 6;
        return;
      }
      ops::ReplayReport report;
      if (!file.empty()) {
        auto h = ReadHistoryFile(file);
        if (!h.ok()) { exit_code = Fail(h.status()); return; }
        // The code may use its workflow id (a child's default id is made
        // from it), so the file's id is the default.
        if (id.empty()) id = h->workflow_id().empty() ? "replay" : h->workflow_id();
        std::vector<v1::HistoryEvent> events(h->events().begin(), h->events().end());
        report = ops::ReplayHistory(BuiltinRegistry(), id, run, events);
      } else {
        if (id.empty()) { exit_code = Fail(Status::InvalidArgument("id: give a workflow id, --history FILE or --all --type T")); return; }
        auto c = Open(db);
        if (!c.ok()) { exit_code = Fail(c.status()); return; }
        auto r = ops::Replay(BuiltinRegistry(), **c, id, run);
        if (!r.ok()) { exit_code = Fail(r.status()); return; }
        report = std::move(r.value());
      }
      PrintReport(report, false);
      if (!report.clean) exit_code = 6;
    });
  }
}

}  // namespace itinera::cli
