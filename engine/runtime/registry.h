// Registry: the workflow and activity implementations a process knows, by
// name. Built once at start-up, then read concurrently without locks.
//
//   inline constexpr WorkflowType<TripRequest, TripResult> kTrip{"TripReminder"};
//   inline constexpr ActivityType<ConfirmRequest, Confirmation> kConfirm{"Confirm"};
//   registry.Register(kTrip, &TripReminder);
//   registry.Register(kConfirm, [](ActivityContext& ctx, const ConfirmRequest& in) {...});
#pragma once

#include <google/protobuf/descriptor.h>

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "activity/activity_context.h"
#include "common/payload.h"
#include "common/status.h"
#include "runtime/errors.h"
#include "runtime/task.h"

namespace itinera {

class WorkflowContext;

// Typed names: the name a workflow or activity is registered and recorded
// under, with its input and output messages. Declare one per kind, use it to
// register and to call.
template <class In, class Out>
struct WorkflowType {
  std::string_view name;
};
template <class In, class Out>
struct ActivityType {
  std::string_view name;
};

struct WorkflowEntry {
  std::string name;
  const google::protobuf::Descriptor* input_type = nullptr;
  const google::protobuf::Descriptor* output_type = nullptr;
  // Runs the workflow on a decoded-later payload; the result is its output payload.
  std::function<Task<v1::Payload>(WorkflowContext&, v1::Payload)> run;
};

struct ActivityEntry {
  std::string name;
  const google::protobuf::Descriptor* input_type = nullptr;
  // Throws ApplicationError (or any exception) to fail the attempt.
  std::function<v1::Payload(ActivityContext&, const v1::Payload&)> run;
};

namespace detail {
template <class In, class Out>
Task<v1::Payload> RunTypedWorkflow(Task<Out> (*fn)(WorkflowContext&, In), WorkflowContext& ctx,
                                   v1::Payload input) {
  In in;
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
    WorkflowEntry e;
    e.name = std::string(type.name);
    e.input_type = In::descriptor();
    e.output_type = Out::descriptor();
    e.run = [fn](WorkflowContext& ctx, v1::Payload input) {
      return detail::RunTypedWorkflow<In, Out>(fn, ctx, std::move(input));
    };
    workflows_[e.name] = std::move(e);
  }

  template <class In, class Out, class Fn>
  void Register(ActivityType<In, Out> type, Fn fn) {
    ActivityEntry e;
    e.name = std::string(type.name);
    e.input_type = In::descriptor();
    e.run = [fn = std::move(fn)](ActivityContext& ctx, const v1::Payload& input) {
      In in;
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

  // Converts JSON into the named workflow's input payload, naming the bad
  // field or the unknown type.
  StatusOr<v1::Payload> WorkflowInputFromJson(std::string_view workflow_type,
                                              std::string_view json) const;

 private:
  std::map<std::string, WorkflowEntry, std::less<>> workflows_;
  std::map<std::string, ActivityEntry, std::less<>> activities_;
};

}  // namespace itinera
