#include "faults.h"

#include <fmt/format.h>

#include <algorithm>

#include "catalogue.h"

namespace itinera::supplier {
namespace {

using nlohmann::json;

constexpr int kMaxMillis = 600'000;

Status Bad(const std::string& field, const std::string& what) {
  return Status::InvalidArgument(fmt::format("{}: {}", field, what));
}

// Whether `v` is an integer in [lo, hi], compared as a JSON number (a large
// unsigned one is not -1, 4294967696 is not 400).
bool IntBetween(const json& v, std::int64_t lo, std::int64_t hi) {  // hi >= 0
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    return u <= static_cast<std::uint64_t>(hi) && static_cast<std::int64_t>(u) >= lo;
  }
  return v.is_number_integer() && v.get<std::int64_t>() >= lo && v.get<std::int64_t>() <= hi;
}

Status ReadRate(const json& rule, const char* name, const std::string& prefix, double* out) {
  if (!rule.contains(name)) return Status::Ok();
  const json& v = rule[name];
  if (!v.is_number()) return Bad(prefix + name, "must be a number between 0 and 1");
  double d = v.get<double>();
  if (d < 0 || d > 1) return Bad(prefix + name, "must be between 0 and 1");
  *out = d;
  return Status::Ok();
}

Status ReadMillis(const json& rule, const char* name, const std::string& prefix, int* out) {
  if (!rule.contains(name)) return Status::Ok();
  const json& v = rule[name];
  if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() > kMaxMillis) {
    return Bad(prefix + name, fmt::format("must be an integer between 0 and {}", kMaxMillis));
  }
  *out = v.get<int>();
  return Status::Ok();
}

Status ReadBool(const json& rule, const char* name, const std::string& prefix, bool* out) {
  if (!rule.contains(name)) return Status::Ok();
  if (!rule[name].is_boolean()) return Bad(prefix + name, "must be true or false");
  *out = rule[name].get<bool>();
  return Status::Ok();
}

// A uniform draw in [0, 1) for the n-th request and the k-th kind of fault.
double Draw(std::uint64_t seed, std::uint64_t n, std::uint64_t kind) {
  std::uint64_t x = Mix(seed ^ Mix(n * 0x9e3779b97f4a7c15ull + kind));
  return static_cast<double>(x >> 11) * 0x1.0p-53;
}

}  // namespace

StatusOr<FaultPlan> ParseFaultPlan(const json& body, const std::vector<std::string>& endpoints,
                                   std::uint64_t default_seed) {
  if (!body.is_object()) return Bad("plan", "must be a JSON object");
  static const std::vector<std::string> kKnown = {"seed", "rules", "fare_jump_percent"};
  for (const auto& [k, v] : body.items()) {
    if (std::find(kKnown.begin(), kKnown.end(), k) == kKnown.end()) return Bad(k, "unknown field");
  }
  FaultPlan plan;
  plan.seed = default_seed;
  if (body.contains("seed")) {
    if (!body["seed"].is_number_unsigned() && !body["seed"].is_number_integer())
      return Bad("seed", "must be an integer");
    plan.seed = static_cast<std::uint64_t>(body["seed"].get<std::int64_t>());
  }
  if (body.contains("rules")) {
    if (!body["rules"].is_array()) return Bad("rules", "must be an array");
    static const std::vector<std::string> kRuleFields = {"endpoint", "error_rate", "lost_response_rate",
                                                         "latency_ms", "hang_rate", "hang_ms",
                                                         "sold_out", "card_declined",
                                                         "reject_status", "reject_error", "reject_rate"};
    for (size_t i = 0; i < body["rules"].size(); ++i) {
      const json& r = body["rules"][i];
      std::string prefix = fmt::format("rules[{}].", i);
      if (!r.is_object()) return Bad(fmt::format("rules[{}]", i), "must be an object");
      for (const auto& [k, v] : r.items()) {
        if (std::find(kRuleFields.begin(), kRuleFields.end(), k) == kRuleFields.end()) {
          return Bad(prefix + k, "unknown field");
        }
      }
      FaultRule rule;
      if (r.contains("endpoint")) {
        if (!r["endpoint"].is_string()) return Bad(prefix + "endpoint", "must be a string");
        rule.endpoint = r["endpoint"].get<std::string>();
        if (rule.endpoint != "*" && std::find(endpoints.begin(), endpoints.end(), rule.endpoint) == endpoints.end()) {
          return Bad(prefix + "endpoint", fmt::format("unknown endpoint \"{}\" (e.g. \"POST /flights/holds\" or \"*\")",
                                                      rule.endpoint));
        }
      }
      if (Status s = ReadRate(r, "error_rate", prefix, &rule.error_rate); !s.ok()) return s;
      if (Status s = ReadRate(r, "lost_response_rate", prefix, &rule.lost_response_rate); !s.ok()) return s;
      if (Status s = ReadRate(r, "hang_rate", prefix, &rule.hang_rate); !s.ok()) return s;
      if (Status s = ReadMillis(r, "latency_ms", prefix, &rule.latency_ms); !s.ok()) return s;
      if (Status s = ReadMillis(r, "hang_ms", prefix, &rule.hang_ms); !s.ok()) return s;
      if (Status s = ReadBool(r, "sold_out", prefix, &rule.sold_out); !s.ok()) return s;
      if (Status s = ReadBool(r, "card_declined", prefix, &rule.card_declined); !s.ok()) return s;
      if (Status s = ReadRate(r, "reject_rate", prefix, &rule.reject_rate); !s.ok()) return s;
      if (r.contains("reject_status")) {
        const json& v = r["reject_status"];
        if (!IntBetween(v, 400, 499)) {
          return Bad(prefix + "reject_status", "must be an HTTP status from 400 to 499");
        }
        rule.reject_status = v.get<int>();
        if (!r.contains("reject_error") || !r["reject_error"].is_string() || r["reject_error"].get<std::string>().empty()) {
          return Bad(prefix + "reject_error", "required with reject_status: the error code to answer, e.g. \"hold_expired\"");
        }
        rule.reject_error = r["reject_error"].get<std::string>();
      } else if (r.contains("reject_error")) {
        return Bad(prefix + "reject_status", "required with reject_error");
      }
      plan.rules.push_back(rule);
    }
  }
  if (body.contains("fare_jump_percent")) {
    const json& j = body["fare_jump_percent"];
    if (!j.is_object()) return Bad("fare_jump_percent", "must be an object of id → percent");
    for (const auto& [id, v] : j.items()) {
      std::string field = fmt::format("fare_jump_percent.{}", id);
      if (!IntBetween(v, -90, 1000)) {
        return Bad(field, "must be an integer between -90 and 1000");
      }
      plan.fare_jump_percent[id] = v.get<int>();
    }
  }
  return plan;
}

json FaultPlanToJson(const FaultPlan& plan) {
  json rules = json::array();
  for (const auto& r : plan.rules) {
    rules.push_back({{"endpoint", r.endpoint},
                     {"error_rate", r.error_rate},
                     {"lost_response_rate", r.lost_response_rate},
                     {"latency_ms", r.latency_ms},
                     {"hang_rate", r.hang_rate},
                     {"hang_ms", r.hang_ms},
                     {"sold_out", r.sold_out},
                     {"card_declined", r.card_declined},
                     {"reject_status", r.reject_status},
                     {"reject_error", r.reject_error},
                     {"reject_rate", r.reject_rate}});
  }
  json jumps = json::object();
  for (const auto& [id, p] : plan.fare_jump_percent) jumps[id] = p;
  return {{"seed", plan.seed}, {"rules", rules}, {"fare_jump_percent", jumps}};
}

void FaultInjector::SetPlan(FaultPlan plan) {
  std::lock_guard lock(mu_);
  plan_ = std::move(plan);
  counter_ = 0;
}

void FaultInjector::Clear() { SetPlan(FaultPlan{}); }

FaultPlan FaultInjector::plan() const {
  std::lock_guard lock(mu_);
  return plan_;
}

FaultDecision FaultInjector::Decide(const std::string& endpoint) {
  std::lock_guard lock(mu_);
  const FaultRule* rule = nullptr;
  for (const auto& r : plan_.rules) {
    if (r.endpoint == endpoint) { rule = &r; break; }
    if (r.endpoint == "*" && rule == nullptr) rule = &r;
  }
  FaultDecision d;
  if (rule == nullptr) return d;
  std::uint64_t n = counter_++;
  d.latency_ms = rule->latency_ms;
  if (rule->hang_ms > 0 && Draw(plan_.seed, n, 1) < rule->hang_rate) d.hang_ms = rule->hang_ms;
  d.error = Draw(plan_.seed, n, 2) < rule->error_rate;
  d.lost_response = !d.error && Draw(plan_.seed, n, 3) < rule->lost_response_rate;
  d.sold_out = rule->sold_out;
  d.card_declined = rule->card_declined;
  if (rule->reject_status != 0 && Draw(plan_.seed, n, 4) < rule->reject_rate) {
    d.reject_status = rule->reject_status;
    d.reject_error = rule->reject_error;
  }
  return d;
}

int FaultInjector::FareJumpPercent(const std::string& id) const {
  std::lock_guard lock(mu_);
  if (auto it = plan_.fare_jump_percent.find(id); it != plan_.fare_jump_percent.end()) return it->second;
  if (auto it = plan_.fare_jump_percent.find("*"); it != plan_.fare_jump_percent.end()) return it->second;
  return 0;
}

}  // namespace itinera::supplier
