// Registry: the workflow and activity implementations a process knows, by
// name. Built once at start-up, then read concurrently without locks.
//
//   inline constexpr WorkflowType<TripRequest, TripResult> kTrip{"TripReminder"};
//   inline constexpr ActivityType<std::string, Confirmation> kConfirm{"Confirm", {.start_to_close = 30s}};
//   registry.Register(kTrip, &TripReminder);
//   registry.Register(kConfirm, [](ActivityContext& ctx, const std::string& in) {...});
//
// Inputs and outputs are any payload type (common/codec.h): protobuf
// messages, std::string and scalars, structs nlohmann-json converts.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "activity/activity_context.h"
#include "common/payload.h"
#include "common/status.h"
#include "runtime/activity_options.h"
#include "runtime/errors.h"
#include "runtime/task.h"

namespace itinera {

class WorkflowContext;

// Typed names: the name a workflow or activity is registered and recorded
// under, with its input and output types. Declare one per kind, use it to
// register and to call.
template <class In, class Out>
struct WorkflowType {
  std::string_view name;
};
// An activity's declaration also carries the options a call without its
// own uses (WorkflowContext::ExecuteActivity).
template <class In, class Out>
struct ActivityType {
  std::string_view name;
  ActivityOptions options;
};

struct WorkflowEntry {
  std::string name;
  std::string input_type;   // payload type names (PayloadTypeName, common/codec.h)
  std::string output_type;
  // JSON text to an input payload (PayloadFromJson): the CLI's and the
  // admin API's starts, through Registry::WorkflowInputFromJson.
  std::function<StatusOr<v1::Payload>(std::string_view json)> input_from_json;
  // Runs the workflow on a decoded-later payload; the result is its output payload.
  std::function<Task<v1::Payload>(WorkflowContext&, v1::Payload)> run;
  // Optional: checks a start request's input before any run exists, so bad
  // input is refused at start (InvalidArgument naming the field) instead of
  // failing the run it would create.
  std::function<Status(const v1::Payload&)> validate_input;
  // A closed run's workflow id is not started again (Client::StartJson
  // refuses with AlreadyExists): for work that must happen once, like a
  // booking, where a second run could only fail or do it twice.
  bool once_per_id = false;
};

// What a workflow type checks before a run of it starts (Registry::Register).
template <class In>
struct StartRules {
  Status (*validate)(const In&) = nullptr;  // see WorkflowEntry::validate_input
  bool once_per_id = false;                 // see WorkflowEntry::once_per_id
};

struct ActivityEntry {
  std::string name;
  std::string input_type;  // payload type names, as in WorkflowEntry
  std::string output_type;
  // Throws ApplicationError (or any exception) to fail the attempt.
  std::function<v1::Payload(ActivityContext&, const v1::Payload&)> run;
};

namespace detail {
template <class In, class Out>
Task<v1::Payload> RunTypedWorkflow(Task<Out> (*fn)(WorkflowContext&, In), WorkflowContext& ctx,
                                   v1::Payload input) {
  In in{};
  if (Status s = DecodePayload(input, &in); !s.ok()) {
    throw ApplicationError("InvalidInput", s.message(), true);
  }
  Out out = co_await fn(ctx, std::move(in));
  co_return EncodePayload(out);
}
}  // namespace detail

class Registry {
 public:
  template <class In, class Out>
  void Register(WorkflowType<In, Out> type, Task<Out> (*fn)(WorkflowContext&, In)) {
    static_assert(PayloadValue<In> && PayloadValue<Out>, "see EncodePayload (common/codec.h)");
    WorkflowEntry e;
    e.name = std::string(type.name);
    e.input_type = PayloadTypeName<In>();
    e.output_type = PayloadTypeName<Out>();
    e.input_from_json = [](std::string_view json) { return PayloadFromJson<In>(json, "input"); };
    e.run = [fn](WorkflowContext& ctx, v1::Payload input) {
      return detail::RunTypedWorkflow<In, Out>(fn, ctx, std::move(input));
    };
    workflows_[e.name] = std::move(e);
  }
  // The same, with the checks its starts go through.
  template <class In, class Out>
  void Register(WorkflowType<In, Out> type, Task<Out> (*fn)(WorkflowContext&, In), StartRules<In> rules) {
    Register(type, fn);
    WorkflowEntry& e = workflows_[std::string(type.name)];
    e.once_per_id = rules.once_per_id;
    if (rules.validate == nullptr) return;
    e.validate_input = [validate = rules.validate](const v1::Payload& input) {
      In in{};
      if (Status s = DecodePayload(input, &in); !s.ok()) return s;
      return validate(in);
    };
  }

  template <class In, class Out, class Fn>
  void Register(const ActivityType<In, Out>& type, Fn fn) {
    static_assert(PayloadValue<In> && PayloadValue<Out>, "see EncodePayload (common/codec.h)");
    ActivityEntry e;
    e.name = std::string(type.name);
    e.input_type = PayloadTypeName<In>();
    e.output_type = PayloadTypeName<Out>();
    e.run = [fn = std::move(fn)](ActivityContext& ctx, const v1::Payload& input) {
      In in{};
      if (Status s = DecodePayload(input, &in); !s.ok()) {
        throw ApplicationError("InvalidInput", s.message(), true);
      }
      Out out = fn(ctx, in);
      return EncodePayload(out);
    };
    activities_[e.name] = std::move(e);
  }

  const WorkflowEntry* FindWorkflow(std::string_view name) const;
  const ActivityEntry* FindActivity(std::string_view name) const;
  std::vector<std::string> WorkflowNames() const;
  std::vector<std::string> ActivityNames() const;

  // Converts JSON into the named workflow's input payload (PayloadFromJson),
  // naming the bad field (`input: unknown field "nmae" for hello::Name`;
  // "input.flight_id: required", when the type validates its input) or the
  // unknown type.
  StatusOr<v1::Payload> WorkflowInputFromJson(std::string_view workflow_type,
                                              std::string_view json) const;

 private:
  std::map<std::string, WorkflowEntry, std::less<>> workflows_;
  std::map<std::string, ActivityEntry, std::less<>> activities_;
};

}  // namespace itinera
