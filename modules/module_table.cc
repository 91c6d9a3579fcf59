#include "module_table.h"

namespace itinera::modules {

Status RegisterAll(Registry& registry, const ModuleConfig& config) {
  for (const ModuleEntry& m : All()) {
    try {
      m.register_fn(registry, config);
    } catch (const ModuleConfigError& e) {
      return Status::InvalidArgument(e.what());
    }
  }
  return Status::Ok();
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
