// itinera workflow start|list|describe|history|signal|cancel|terminate|replay
#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "client/client.h"
#include "history/history_text.h"
#include "history/history_validator.h"
#include "runtime/workflow_executor.h"

namespace itinera::cli {

namespace {

using nlohmann::json;

struct Common {
  std::string db;
};

StatusOr<std::unique_ptr<Client>> Open(const Common& c) {
  auto dsn = ResolveDsn(c.db);
  if (!dsn.ok()) return dsn.status();
  return Client::Connect(*dsn, &BuiltinRegistry());
}

json InfoJson(const store::ExecutionInfo& i) {
  json j{{"workflow_id", i.workflow_id},
         {"run_id", i.run_id},
         {"workflow_type", i.workflow_type},
         {"task_queue", i.task_queue},
         {"status", store::ExecutionStatusName(i.status)},
         {"started", FormatMicros(i.started_us)},
         {"history_length", i.history_length},
         {"history_bytes", i.history_bytes},
         {"cancel_requested", i.cancel_requested}};
  if (i.closed_us) j["closed"] = FormatMicros(*i.closed_us);
  if (!i.task_failure_code.empty()) {
    j["stuck"] = {{"code", i.task_failure_code}, {"message", i.task_failure_message}, {"attempts", i.task_failure_attempt}};
  }
  json acts = json::array();
  for (const auto& a : i.pending_activities) {
    json ja{{"activity_type", a.activity_type}, {"activity_id", a.activity_id},
            {"scheduled_event_id", a.scheduled_event_id}, {"attempt", a.attempt},
            {"state", a.running ? "running" : "scheduled"}};
    if (!a.running) ja["next_attempt"] = FormatMicros(a.next_attempt_us);
    if (a.last_failure) ja["last_failure"] = {{"type", a.last_failure->type()}, {"message", a.last_failure->message()}};
    acts.push_back(ja);
  }
  j["pending_activities"] = acts;
  json timers = json::array();
  for (const auto& t : i.pending_timers) timers.push_back({{"timer_id", t.timer_id}, {"fires", FormatMicros(t.fire_us)}});
  j["pending_timers"] = timers;
  j["workflow_task_pending"] = i.workflow_task_pending;
  return j;
}

StatusOr<v1::Payload> SignalInput(const std::string& type_name, const std::string& input) {
  if (type_name.empty()) {
    if (!input.empty() && input != "{}") {
      return Status::InvalidArgument("--type: give the signal's message type (e.g. itinera.example.v1.Approval) "
                                     "to send JSON input");
    }
    return v1::Payload();
  }
  const auto* d = google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(type_name);
  if (d == nullptr) return Status::InvalidArgument(fmt::format("--type: unknown message type \"{}\"", type_name));
  google::protobuf::DynamicMessageFactory factory;
  std::unique_ptr<google::protobuf::Message> m(factory.GetPrototype(d)->New());
  if (Status s = JsonToMessage(input, m.get(), "input"); !s.ok()) return s;
  v1::Payload p;
  p.set_encoding(std::string(kEncodingProtobuf));
  p.set_type_name(type_name);
  m->SerializeToString(p.mutable_data());
  return p;
}

StatusOr<std::vector<v1::HistoryEvent>> ReadHistoryFile(const std::string& path) {
  std::ifstream f(path);
  if (!f) return Status::InvalidArgument(fmt::format("--history: cannot read {}", path));
  std::stringstream ss;
  ss << f.rdbuf();
  v1::History h;
  google::protobuf::util::JsonParseOptions o;
  auto st = google::protobuf::util::JsonStringToMessage(ss.str(), &h, o);
  if (!st.ok()) return Status::InvalidArgument(fmt::format("--history: {}: {}", path, std::string(st.message())));
  return std::vector<v1::HistoryEvent>(h.events().begin(), h.events().end());
}

}  // namespace

void AddWorkflowCommands(CLI::App& app, int& exit_code) {
  auto* wf = app.add_subcommand("workflow", "start, inspect and steer workflows");
  wf->require_subcommand(1);
  static Common common;
  wf->add_option("--db", common.db, "database DSN (or ITINERA_DB)");

  // start
  {
    auto* cmd = wf->add_subcommand("start", "start a workflow");
    static std::string type, id, input = "{}", request_id, queue = "default";
    cmd->add_option("type", type, "workflow type")->required();
    cmd->add_option("--id", id, "workflow id")->required();
    cmd->add_option("--input", input, "input as JSON");
    cmd->add_option("--request-id", request_id, "idempotency: the same id and request id return the same run");
    cmd->add_option("--task-queue", queue, "task queue");
    cmd->callback([&exit_code] {
      auto c = Open(common);
      if (!c.ok()) { exit_code = Fail(c.status()); return; }
      StartOptions o;
      o.task_queue = queue;
      o.request_id = request_id;
      auto r = (*c)->StartJson(type, id, input, o);
      if (!r.ok()) { exit_code = Fail(r.status()); return; }
      std::cout << json{{"workflow_id", id}, {"run_id", r->run_id}, {"created", r->created}}.dump() << "\n";
    });
  }
  // list
  {
    auto* cmd = wf->add_subcommand("list", "list workflows");
    static std::string status, type;
    static int limit = 100;
    static bool as_json = false;
    cmd->add_option("--status", status, "Running, Completed, Failed, Canceled, Terminated, ContinuedAsNew, TimedOut");
    cmd->add_option("--type", type, "workflow type");
    cmd->add_option("--limit", limit, "at most this many");
    cmd->add_flag("--json", as_json, "one JSON object per line");
    cmd->callback([&exit_code] {
      store::ListFilter f;
      if (!status.empty()) {
        f.status = store::ParseExecutionStatus(status);
        if (!f.status) { exit_code = Fail(Status::InvalidArgument(fmt::format("--status: unknown status \"{}\"", status))); return; }
      }
      f.workflow_type = type;
      f.limit = limit;
      auto c = Open(common);
      if (!c.ok()) { exit_code = Fail(c.status()); return; }
      auto r = (*c)->List(f);
      if (!r.ok()) { exit_code = Fail(r.status()); return; }
      for (const auto& i : *r) {
        if (as_json) {
          std::cout << InfoJson(i).dump() << "\n";
        } else {
          std::cout << fmt::format("{:<36} {:<15} {:<20} {}  events={}{}\n", i.workflow_id,
                                   store::ExecutionStatusName(i.status), i.workflow_type, FormatMicros(i.started_us),
                                   i.history_length,
                                   i.task_failure_code.empty() ? "" : "  stuck=" + i.task_failure_code);
        }
      }
    });
  }
  // describe
  {
    auto* cmd = wf->add_subcommand("describe", "status of one workflow, and why");
    static std::string id, run;
    cmd->add_option("id", id, "workflow id")->required();
    cmd->add_option("--run", run, "run id (default: current)");
    cmd->callback([&exit_code] {
      auto c = Open(common);
      if (!c.ok()) { exit_code = Fail(c.status()); return; }
      auto r = (*c)->Describe(id, run);
      if (!r.ok()) { exit_code = Fail(r.status()); return; }
      std::cout << InfoJson(*r).dump(2) << "\n";
    });
  }
  // history
  {
    auto* cmd = wf->add_subcommand("history", "the run's events, one line each");
    static std::string id, run;
    static bool as_json = false;
    cmd->add_option("id", id, "workflow id")->required();
    cmd->add_option("--run", run, "run id (default: current)");
    cmd->add_flag("--json", as_json, "the exact record (itinera.v1.History as JSON)");
    cmd->callback([&exit_code] {
      auto c = Open(common);
      if (!c.ok()) { exit_code = Fail(c.status()); return; }
      auto info = (*c)->Describe(id, run);
      if (!info.ok()) { exit_code = Fail(info.status()); return; }
      auto r = (*c)->History(id, info->run_id);
      if (!r.ok()) { exit_code = Fail(r.status()); return; }
      if (as_json) {
        v1::History h;
        h.set_workflow_id(id);
        h.set_run_id(info->run_id);
        for (auto& e : *r) *h.add_events() = e;
        std::cout << MessageToJson(h, true) << "\n";
      } else {
        for (const auto& e : *r) std::cout << history::FormatEventLine(e) << "\n";
      }
    });
  }
  // signal
  {
    auto* cmd = wf->add_subcommand("signal", "send a signal");
    static std::string id, run, name, input, type_name;
    cmd->add_option("id", id, "workflow id")->required();
    cmd->add_option("--name", name, "signal name")->required();
    cmd->add_option("--input", input, "signal input as JSON");
    cmd->add_option("--type", type_name, "protobuf message type of the input");
    cmd->add_option("--run", run, "run id (default: current)");
    cmd->callback([&exit_code] {
      auto p = SignalInput(type_name, input);
      if (!p.ok()) { exit_code = Fail(p.status()); return; }
      auto c = Open(common);
      if (!c.ok()) { exit_code = Fail(c.status()); return; }
      if (Status s = (*c)->SignalPayload(id, name, *p, run); !s.ok()) { exit_code = Fail(s); return; }
      std::cout << "signaled\n";
    });
  }
  // cancel / terminate
  for (const char* verb : {"cancel", "terminate"}) {
    auto* cmd = wf->add_subcommand(verb, std::string(verb) == "cancel" ? "ask the workflow to cancel (it may compensate)"
                                                                       : "end the run now, running no more code");
    auto id = std::make_shared<std::string>();
    auto run = std::make_shared<std::string>();
    auto reason = std::make_shared<std::string>();
    cmd->add_option("id", *id, "workflow id")->required();
    cmd->add_option("--run", *run, "run id (default: current)");
    cmd->add_option("--reason", *reason, "why, recorded in history");
    std::string v = verb;
    cmd->callback([&exit_code, id, run, reason, v] {
      auto c = Open(common);
      if (!c.ok()) { exit_code = Fail(c.status()); return; }
      Status s = v == "cancel" ? (*c)->Cancel(*id, *reason, *run) : (*c)->Terminate(*id, *reason, *run);
      if (!s.ok()) { exit_code = Fail(s); return; }
      std::cout << (v == "cancel" ? "cancel requested\n" : "terminated\n");
    });
  }
  // replay
  {
    auto* cmd = wf->add_subcommand("replay", "replay a history against this binary's code");
    static std::string id, run, file;
    cmd->add_option("id", id, "workflow id");
    cmd->add_option("--run", run, "run id (default: current)");
    cmd->add_option("--history", file, "replay an exported history (history --json) instead");
    cmd->callback([&exit_code] {
      std::vector<v1::HistoryEvent> events;
      std::string wid = id, rid = run;
      if (!file.empty()) {
        auto r = ReadHistoryFile(file);
        if (!r.ok()) { exit_code = Fail(r.status()); return; }
        events = std::move(r.value());
        if (wid.empty()) wid = "replay";
      } else {
        if (id.empty()) { exit_code = Fail(Status::InvalidArgument("id: give a workflow id or --history FILE")); return; }
        auto c = Open(common);
        if (!c.ok()) { exit_code = Fail(c.status()); return; }
        auto info = (*c)->Describe(id, run);
        if (!info.ok()) { exit_code = Fail(info.status()); return; }
        rid = info->run_id;
        auto r = (*c)->History(id, rid);
        if (!r.ok()) { exit_code = Fail(r.status()); return; }
        events = std::move(r.value());
      }
      if (Status s = history::ValidateHistory(events); !s.ok()) { exit_code = Fail(s); return; }
      WorkflowExecutor exec(BuiltinRegistry(), wid, rid);
      Status s = exec.Apply(events);
      if (s.ok()) s = exec.CheckReplayComplete();
      if (!s.ok()) {
        std::cout << fmt::format("divergence: {}\n", exec.failure().message());
        exit_code = 6;
        return;
      }
      std::cout << fmt::format("replays cleanly: {} events of {}\n", events.size(), exec.workflow_type());
    });
  }
  // --db is accepted after the subcommand as well as before it.
  for (auto* sub : wf->get_subcommands({})) sub->add_option("--db", common.db, "database DSN (or ITINERA_DB)");
}

}  // namespace itinera::cli
