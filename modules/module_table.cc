#include "module_table.h"

namespace itinera::modules {

namespace {

Status RegisterEntry(const ModuleEntry& m, Registry& registry, const ModuleConfig& config) {
  try {
    m.register_fn(registry, config);
  } catch (const ModuleConfigError& e) {
    return Status::InvalidArgument(e.what());
  }
  return Status::Ok();
}

}  // namespace

Status RegisterAll(Registry& registry, const ModuleConfig& config) {
  for (const ModuleEntry& m : All()) {
    if (Status s = RegisterEntry(m, registry, config); !s.ok()) return s;
  }
  return Status::Ok();
}

Status RegisterModule(Registry& registry, std::string_view name, const ModuleConfig& config) {
  for (const ModuleEntry& m : All()) {
    if (m.name == name) return RegisterEntry(m, registry, config);
  }
  return Status::NotFound("no module '" + std::string(name) + "' in this build (modules/CMakeLists.txt)");
}

store::Migrator AllMigrations() {
  std::vector<store::ModuleMigrations> modules;
  for (const ModuleEntry& m : All()) {
    if (m.migrations != nullptr) modules.push_back({std::string(m.name), m.migrations()});
  }
  return store::Migrator(store::EmbeddedMigrations(), std::move(modules));
}

Status Migrate(const std::string& dsn) { return AllMigrations().Migrate(dsn); }

}  // namespace itinera::modules
