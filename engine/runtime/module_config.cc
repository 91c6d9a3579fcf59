#include "itinera/module.h"

namespace itinera {

void ModuleConfig::Set(std::string key, std::string value, std::string source) {
  if (source.empty()) source = key;
  settings_[std::move(key)] = Setting{std::move(value), std::move(source)};
}

std::string ModuleConfig::Get(std::string_view key, std::string_view fallback) const {
  auto it = settings_.find(key);
  return it == settings_.end() ? std::string(fallback) : it->second.value;
}

void ModuleConfig::Reject(std::string_view key, std::string_view why) const {
  auto it = settings_.find(key);
  const std::string source = it == settings_.end() ? std::string(key) : it->second.source;
  throw ModuleConfigError(source + ": " + std::string(why));
}

}  // namespace itinera
