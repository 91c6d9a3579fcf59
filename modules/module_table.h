// The workflow modules this build carries, listed once in
// modules/CMakeLists.txt: the binaries (tools/cli, tests, bench) register every
// module's workflows and activities from this table, and migrate the
// engine's tables together with the modules'. The table itself is generated
// by itinera_module_table() (cmake/ItineraModule.cmake); read-only after start.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "itinera/module.h"
#include "store/migrator.h"

namespace itinera::modules {

struct ModuleEntry {
  std::string_view name;
  // The module's ITINERA_MODULE function.
  void (*register_fn)(Registry& registry, const ModuleConfig& config);
  // Its MIGRATIONS folder, compiled in; null when it has none.
  const std::vector<store::EmbeddedMigration>& (*migrations)();
};

// Every module, in the order of modules/CMakeLists.txt.
const std::vector<ModuleEntry>& All();

// Registers every module into registry. A module refusing its settings is
// InvalidArgument with the module's message ("--supplier-url: ...").
Status RegisterAll(Registry& registry, const ModuleConfig& config);
// Registers one module by name (tests that need one module's workflows);
// NotFound when this build does not carry it.
Status RegisterModule(Registry& registry, std::string_view name, const ModuleConfig& config = {});

// The engine's migrations, then each module's.
store::Migrator AllMigrations();
// AllMigrations().Migrate(dsn): what `itinera migrate`, serve, dev and the
// test harness run.
Status Migrate(const std::string& dsn);

}  // namespace itinera::modules
