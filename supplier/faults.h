// The fault plan (PUT/GET/DELETE /admin/faults): which endpoints fail, lose
// their response, slow down, hang, sell out or decline cards, and which fares
// jump. Held in memory only (a restart clears it). Decisions come from the
// plan's seed and a counter of the requests the plan applied to, so one
// sequential run repeats exactly. Thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"

namespace itinera::supplier {

struct FaultRule {
  std::string endpoint = "*";       // "POST /flights/holds", or "*" for every endpoint
  double error_rate = 0;            // 503 before any effect
  double lost_response_rate = 0;    // effect committed, then 503
  int latency_ms = 0;               // added to every matching call
  double hang_rate = 0;             // sleep hang_ms, then answer
  int hang_ms = 0;
  bool sold_out = false;            // holds answer 409 sold_out
  bool card_declined = false;       // authorizations answer 402 card_declined
  int reject_status = 0;            // 4xx: answer this business refusal before any effect
  std::string reject_error;         // its error code, e.g. "hold_expired"
  double reject_rate = 1;           // how often, when reject_status is set
};

struct FaultPlan {
  std::uint64_t seed = 1;
  std::vector<FaultRule> rules;
  std::map<std::string, int> fare_jump_percent;  // flight or hotel id, or "*"
};

// What to do to one request.
struct FaultDecision {
  int latency_ms = 0;
  int hang_ms = 0;             // 0: no hang
  bool error = false;
  bool lost_response = false;
  bool sold_out = false;
  bool card_declined = false;
  int reject_status = 0;       // 0: no injected refusal
  std::string reject_error;
};

// Parses a plan as PUT /admin/faults takes it. `endpoints` are the names a
// rule may use besides "*"; errors name the field ("rules[0].error_rate").
StatusOr<FaultPlan> ParseFaultPlan(const nlohmann::json& body, const std::vector<std::string>& endpoints,
                                   std::uint64_t default_seed);
nlohmann::json FaultPlanToJson(const FaultPlan& plan);

class FaultInjector {
 public:
  void SetPlan(FaultPlan plan);
  void Clear();
  FaultPlan plan() const;

  // The decision for one request to `endpoint` ("POST /flights/holds"). The
  // rule naming the endpoint wins over "*"; requests no rule names draw
  // nothing and do not advance the counter.
  FaultDecision Decide(const std::string& endpoint);

  // The plan's fare jump for a flight or hotel id ("*" when not named).
  int FareJumpPercent(const std::string& id) const;

 private:
  mutable std::mutex mu_;
  FaultPlan plan_;              // guarded by mu_
  std::uint64_t counter_ = 0;   // guarded by mu_; requests the plan applied to
};

}  // namespace itinera::supplier
