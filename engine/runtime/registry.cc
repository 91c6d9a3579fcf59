#include "runtime/registry.h"

#include <fmt/format.h>

namespace itinera {

const WorkflowEntry* Registry::FindWorkflow(std::string_view name) const {
  auto it = workflows_.find(name);
  return it == workflows_.end() ? nullptr : &it->second;
}

const ActivityEntry* Registry::FindActivity(std::string_view name) const {
  auto it = activities_.find(name);
  return it == activities_.end() ? nullptr : &it->second;
}

std::vector<std::string> Registry::WorkflowNames() const {
  std::vector<std::string> out;
  for (const auto& [name, _] : workflows_) out.push_back(name);
  return out;
}

std::vector<std::string> Registry::ActivityNames() const {
  std::vector<std::string> out;
  for (const auto& [name, _] : activities_) out.push_back(name);
  return out;
}

StatusOr<v1::Payload> Registry::WorkflowInputFromJson(std::string_view workflow_type,
                                                      std::string_view json) const {
  const WorkflowEntry* e = FindWorkflow(workflow_type);
  if (e == nullptr) {
    return Status::InvalidArgument(fmt::format("workflow type: unknown workflow type \"{}\" (known: {})",
                                               workflow_type, fmt::join(WorkflowNames(), ", ")));
  }
  auto p = e->input_from_json(json);
  if (!p.ok()) return p.status();
  if (e->validate_input) {
    if (Status s = e->validate_input(*p); !s.ok()) {
      return Status(s.code(), fmt::format("input.{}", s.message()));
    }
  }
  return p;
}

}  // namespace itinera
