// itinera workflow start|list|describe|history|query (and, from repair_commands.cc, the repairs)
#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/operator_read.h"
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


}  // namespace

void AddWorkflowCommands(CLI::App& app, int& exit_code) {
  auto* wf = app.add_subcommand("workflow", "start, inspect and steer workflows");
  wf->require_subcommand(1);
  static Common common;
  wf->add_option("--db", common.db, kDbHelp);

  // start
  {
    auto* cmd = wf->add_subcommand("start", "start a workflow");
    static std::string type, id, input = "{}", request_id, queue = "default", traceparent;
    cmd->add_option("type", type, "workflow type")->required();
    cmd->add_option("--id", id, "workflow id")->required();
    cmd->add_option("--input", input, "input as JSON");
    cmd->add_option("--request-id", request_id, "idempotency: the same id and request id return the same run");
    cmd->add_option("--task-queue", queue, "task queue");
    cmd->add_option("--traceparent", traceparent, "W3C trace context to record and pass on to activities");
    cmd->callback([&exit_code] {
      if (Status s = CheckJsonSyntax(input, "--input"); !s.ok()) { exit_code = Fail(s); return; }
      auto c = Open(common);
      if (!c.ok()) { exit_code = Fail(c.status()); return; }
      StartOptions o;
      o.task_queue = queue;
      o.request_id = request_id;
      o.traceparent = traceparent;
      auto r = (*c)->StartJson(type, id, input, o);
      if (!r.ok()) { exit_code = Fail(r.status()); return; }
      std::cout << json{{"workflow_id", id}, {"run_id", r->run_id}, {"created", r->created}}.dump() << "\n";
    });
  }
  // list
  {
    auto* cmd = wf->add_subcommand("list", "list workflows, newest first");
    static ListFlags flags;
    static bool as_json = false;
    cmd->add_option("--status", flags.status, "Running, Completed, Failed, Canceled, Terminated, ContinuedAsNew, TimedOut");
    cmd->add_option("--type", flags.type, "workflow type");
    cmd->add_option("--started-after", flags.started_after, "started at or after: RFC 3339, or relative (-1h, -2d)");
    cmd->add_option("--started-before", flags.started_before, "started before: RFC 3339, or relative (-1h, -2d)");
    cmd->add_option("--stuck-code", flags.stuck_code, "stuck runs whose workflow task fails with this code (ITN-NDE-001)");
    cmd->add_flag("--stuck", flags.stuck, "stuck runs, whatever the code");
    cmd->add_option("--booking", flags.booking, "the booking workflows of a booking id (book/ID, cancel/ID, modify/ID/...)");
    cmd->add_option("--id-prefix", flags.id_prefixes, "workflow ids starting with this (repeatable)");
    cmd->add_option("--limit", flags.limit, "page size (default 100, at most 10000)");
    cmd->add_option("--page-token", flags.page_token, "the next_page_token of the previous page");
    cmd->add_flag("--json", as_json, "one JSON object per line");
    cmd->callback([&exit_code] {
      auto c = Open(common);
      if (!c.ok()) { exit_code = Fail(c.status()); return; }
      auto f = BuildListFilter(flags, (*c)->store().Now());
      if (!f.ok()) { exit_code = Fail(f.status()); return; }
      std::string next_page_token;
      auto r = (*c)->List(*f, &next_page_token);
      if (!r.ok()) { exit_code = Fail(r.status()); return; }
      for (const auto& i : *r) {
        if (as_json) {
          std::cout << RunSummaryJson(i).dump() << "\n";
        } else {
          std::cout << fmt::format("{:<36} {:<15} {:<20} {}  events={}{}\n", i.workflow_id,
                                   store::ExecutionStatusName(i.status), i.workflow_type, FormatMicros(i.started_us),
                                   i.history_length,
                                   i.task_failure_code.empty() ? "" : "  stuck=" + i.task_failure_code);
        }
      }
      // Only when more runs match: the last line says where the next page starts.
      if (!next_page_token.empty()) {
        if (as_json) {
          std::cout << json{{"next_page_token", next_page_token}}.dump() << "\n";
        } else {
          std::cout << "next_page_token " << next_page_token << "\n";
        }
      }
    });
  }
  // describe
  {
    auto* cmd = wf->add_subcommand("describe", "status of one workflow, and why");
    static std::string id, run;
    static bool as_json = false;
    cmd->add_option("id", id, "workflow id")->required();
    cmd->add_option("--run", run, "run id (default: current)");
    cmd->add_flag("--json", as_json, "on one line, for programs");
    cmd->callback([&exit_code] {
      auto c = Open(common);
      if (!c.ok()) { exit_code = Fail(c.status()); return; }
      auto r = (*c)->Describe(id, run);
      if (!r.ok()) { exit_code = Fail(r.status()); return; }
      auto events = (*c)->History(id, r->run_id);
      if (!events.ok()) { exit_code = Fail(events.status()); return; }
      // What the code waits for (replayed with this binary's code), or why the run closed.
      json j = DescribeJson(BuiltinRegistry(), *r, *events);
      std::cout << (as_json ? j.dump() : j.dump(2)) << "\n";
    });
  }
  // history
  {
    auto* cmd = wf->add_subcommand("history", "the run's events, one line each");
    static std::string id, run;
    static bool as_json = false, follow = false;
    cmd->add_option("id", id, "workflow id")->required();
    cmd->add_option("--run", run, "run id (default: current)");
    cmd->add_flag("--json", as_json, "the exact record (itinera.v1.History as JSON); with --follow one event per line");
    cmd->add_flag("--follow,-f", follow, "then print new events as they come, until the run closes (Ctrl-C stops)");
    cmd->callback([&exit_code] {
      auto c = Open(common);
      if (!c.ok()) { exit_code = Fail(c.status()); return; }
      auto info = (*c)->Describe(id, run);
      if (!info.ok()) { exit_code = Fail(info.status()); return; }
      if (follow) {
        // Flushed per event: a reader at the other end of a pipe sees each
        // as it comes, and Ctrl-C loses nothing already printed.
        Status s = FollowHistory(**c, id, info->run_id, [](const v1::HistoryEvent& e) {
          std::cout << (as_json ? MessageToJson(e, false) : history::FormatEventLine(e)) << std::endl;
        });
        if (!s.ok()) exit_code = Fail(s);
        return;
      }
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
  // query
  {
    auto* cmd = wf->add_subcommand(
        "query", "ask a run's query handler; answered by replaying its history with this binary's code");
    static std::string id, name, input, run;
    cmd->add_option("id", id, "workflow id")->required();
    cmd->add_option("name", name, "query name (an unknown name lists the known ones)")->required();
    cmd->add_option("--input", input, "query input as JSON");
    cmd->add_option("--run", run, "run id (default: current; closed runs answer too)");
    cmd->callback([&exit_code] {
      if (!input.empty()) {
        if (Status s = CheckJsonSyntax(input, "--input"); !s.ok()) { exit_code = Fail(s); return; }
      }
      auto c = Open(common);
      if (!c.ok()) { exit_code = Fail(c.status()); return; }
      auto info = (*c)->Describe(id, run);
      if (!info.ok()) { exit_code = Fail(info.status()); return; }
      auto answer = (*c)->QueryWorkflowJson(id, name, input, info->run_id);
      if (!answer.ok()) { exit_code = Fail(answer.status()); return; }
      json j = {{"workflow_id", id}, {"run_id", info->run_id}, {"query", name},
                {"result", json::parse(*answer, nullptr, /*allow_exceptions=*/false)}};
      std::cout << j.dump(2) << "\n";
    });
  }
  // retry, reset, signal, cancel, terminate, replay: repair_commands.cc
  AddRepairCommands(*wf, common.db, exit_code);
  // --db is accepted after the subcommand as well as before it.
  for (auto* sub : wf->get_subcommands({})) sub->add_option("--db", common.db, kDbHelp);
}

}  // namespace itinera::cli
