#include "runtime/registry.h"

#include <fmt/format.h>
#include <google/protobuf/dynamic_message.h>

#include <memory>

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
  google::protobuf::DynamicMessageFactory factory;
  std::unique_ptr<google::protobuf::Message> m(factory.GetPrototype(e->input_type)->New());
  if (Status s = JsonToMessage(json, m.get(), "input"); !s.ok()) return s;
  // Re-encode under the generated type name; dynamic and generated messages
  // share the wire format.
  v1::Payload p;
  p.set_encoding(std::string(kEncodingProtobuf));
  p.set_type_name(e->input_type->full_name());
  m->SerializeToString(p.mutable_data());
  if (e->validate_input) {
    if (Status s = e->validate_input(p); !s.ok()) {
      return Status(s.code(), fmt::format("input.{}", s.message()));
    }
  }
  return p;
}

}  // namespace itinera
