// itinera/module.h: how a workflow module (a folder under modules/, built by
// itinera_workflow_module() in cmake/ItineraModule.cmake) registers its
// workflows and activities, once, for every binary that carries it:
//
//   ITINERA_MODULE(trip_reminder) {
//     registry.Register(kTripReminder, &TripReminder);
//     registry.Register(kReserve, &Reserve);
//   }
//
// The body sees `registry` (the process's Registry, filled before any worker
// starts) and `config` (the database and the settings the process was given).
// The binaries find the function through the module table that CMake
// generates from modules/CMakeLists.txt; nothing else names it.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <string_view>

#include "runtime/registry.h"

namespace itinera {

// What a process hands every module when it registers. Processes that only
// replay or inspect runs (the operator commands) give no database; a module
// registers the same names either way and only uses `dsn` when an activity runs.
class ModuleConfig {
 public:
  // The engine's database: modules keep their own tables there (itinera/database.h).
  std::string dsn;

  // A named setting ("supplier_url") and where it came from ("--supplier-url"),
  // so a module's complaint names what the operator typed.
  void Set(std::string key, std::string value, std::string source = "");
  // The setting, or fallback when the process was not given it.
  std::string Get(std::string_view key, std::string_view fallback = "") const;
  // Refuses a setting: throws ModuleConfigError "SOURCE: why", which the
  // module table turns into an InvalidArgument status for the binary.
  [[noreturn]] void Reject(std::string_view key, std::string_view why) const;

 private:
  struct Setting {
    std::string value;
    std::string source;
  };
  std::map<std::string, Setting, std::less<>> settings_;
};

// A module refusing its configuration (ModuleConfig::Reject).
class ModuleConfigError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

}  // namespace itinera

// Defines the module's registration function. NAME is the module's NAME in
// itinera_workflow_module(); the generated module table calls
// itinera_register_module_NAME, so a typo fails at link time.
#define ITINERA_MODULE(NAME)                                                                 \
  void itinera_register_module_##NAME(::itinera::Registry& registry,                          \
                                      [[maybe_unused]] const ::itinera::ModuleConfig& config); \
  void itinera_register_module_##NAME(::itinera::Registry& registry,                          \
                                      [[maybe_unused]] const ::itinera::ModuleConfig& config)
