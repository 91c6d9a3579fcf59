// Speculative transitions (architecture §5, "One round trip per
// transition"): the snapshots of runs this process wrote last, the check
// that heads a speculative script, and sending that script.

#include <cstdint>
#include <cstdlib>

#include "store/store_internal.h"

namespace itinera::store::internal {

namespace {

// Runs kept at most; beyond, the oldest keys in map order go (a miss only
// costs the locking path).
constexpr std::size_t kMaxSnapshots = 16384;

}  // namespace

RunSnapshots& RunSnapshots::Process() {
  static RunSnapshots* s = new RunSnapshots();  // never destroyed: Stores may outlive static destruction
  return *s;
}

RunSnapshots::RunSnapshots() {
  // ITINERA_SPECULATIVE_TRANSITIONS=0 turns speculation off: every
  // transition takes the locking path (a kill switch, and the benchmark's
  // baseline).
  const char* v = std::getenv("ITINERA_SPECULATIVE_TRANSITIONS");
  enabled_ = v == nullptr || std::string(v) != "0";
}

std::optional<ExecutionRow> RunSnapshots::Run(const RunKey& key) {
  if (!enabled_) return std::nullopt;
  std::lock_guard lock(mu_);
  auto it = runs_.find(key);
  if (it == runs_.end()) return std::nullopt;
  return it->second;
}

std::optional<ActivityRow> RunSnapshots::Activity(const ActivityKey& key) {
  std::lock_guard lock(mu_);
  auto it = activities_.find(key);
  if (it == activities_.end()) return std::nullopt;
  return it->second;
}

namespace {
// Keeps a snapshot map within kMaxSnapshots, sparing `keep`.
template <class Map, class Key>
void Bound(Map& m, const Key& keep) {
  if (m.size() <= kMaxSnapshots) return;
  auto victim = m.begin();
  if (victim->first == keep) ++victim;
  m.erase(victim);
}
}  // namespace

void RunSnapshots::ForgetActivitiesOf(const RunKey& key) {
  auto first = activities_.lower_bound({key.first, key.second, INT64_MIN});
  auto last = activities_.upper_bound({key.first, key.second, INT64_MAX});
  activities_.erase(first, last);
}

void RunSnapshots::Record(const ExecutionRow& exec, bool has_task_row) {
  if (!enabled_) return;
  RunKey key{exec.workflow_id, exec.run_id};
  std::lock_guard lock(mu_);
  if (exec.status != ExecutionStatus::kRunning) {
    runs_.erase(key);
    ForgetActivitiesOf(key);
    return;
  }
  if (has_task_row) {
    // The next transition locks; the run's leases stay valid until then.
    runs_.erase(key);
    return;
  }
  ExecutionRow& e = runs_[key];
  e = exec;
  e.closed_us = 0;
  Bound(runs_, key);
}

void RunSnapshots::RecordLeased(const ActivityWrites::Insert& row) {
  if (!enabled_ || !row.token) return;
  ActivityRow a;
  a.activity_type = row.type;
  a.attrs.ParseFromString(row.attrs);
  a.scheduled_us = row.scheduled_us;
  a.start_to_close_us = row.start_to_close;
  a.schedule_to_close_us = row.schedule_to_close;
  a.heartbeat_us = row.heartbeat;
  a.attempt = 1;
  a.lease_token = row.token;
  a.lease_expires_us = row.lease_expires.value_or(0);
  a.started_us = row.scheduled_us;  // act_insert_many: a leased row starts when scheduled
  a.task_queue = row.queue;
  RecordActivity({row.workflow_id, row.run_id, row.scheduled_event_id}, std::move(a));
}

void RunSnapshots::RecordActivity(const ActivityKey& key, ActivityRow row) {
  if (!enabled_) return;
  std::lock_guard lock(mu_);
  activities_[key] = std::move(row);
  Bound(activities_, key);
}

void RunSnapshots::ForgetActivity(const ActivityKey& key) {
  std::lock_guard lock(mu_);
  activities_.erase(key);
}

void RunSnapshots::Forget(const RunKey& key) {
  std::lock_guard lock(mu_);
  runs_.erase(key);
  ForgetActivitiesOf(key);
}

void RunSnapshots::RecordBatch(const BatchRows& rows, const std::vector<ActivityKey>& touched,
                               const std::vector<ActivityWrites::Insert>& leased) {
  for (const auto& [key, exec] : rows.executions()) {
    auto t = rows.tasks().find(key);
    Record(exec, t != rows.tasks().end() && t->second.has_value());
  }
  for (const auto& k : touched) ForgetActivity(k);
  for (const auto& row : leased) RecordLeased(row);
}

void AppendExpectation(Script& script, const std::vector<ExecutionRow>& runs,
                       const std::vector<std::pair<ActivityKey, ActivityRow>>& activities) {
  ExecutionColumns c;
  for (const auto& e : runs) c.Add(e);
  std::vector<std::string> aw, ar;
  std::vector<std::int64_t> asched, atoken, aattempt;
  for (const auto& [key, a] : activities) {
    aw.push_back(std::get<0>(key));
    ar.push_back(std::get<1>(key));
    asched.push_back(std::get<2>(key));
    atoken.push_back(a.lease_token.value_or(0));
    aattempt.push_back(a.attempt);
  }
  Sql::Deferred(&script).exec_prepared(
      "run_expect", TextArray(c.workflow_id), TextArray(c.run_id), IntArray(c.status), IntArray(c.next_event_id),
      IntArray(c.history_bytes), BoolArray(c.cancel_requested), TextArray(c.sticky_owner), IntArray(c.sticky_until),
      TextArray(c.failure_code), TextArray(c.failure_message), IntArray(c.failure_attempt), TextArray(aw),
      TextArray(ar), IntArray(asched), IntArray(atoken), IntArray(aattempt));
}

bool SendScript(pqxx::connection& c, const Script& script) {
  // SQL EXECUTE finds only statements the server has prepared; libpqxx
  // prepares on first use (and again after reconnecting).
  try {
    for (const auto& name : script.statements) c.prepare_now(name);
  } catch (const pqxx::undefined_function&) {
    return false;  // a database not migrated to 0006 yet: the locking path still works
  }
  try {
    pqxx::nontransaction tx(c);
    tx.exec(script.text);
    return true;
  } catch (const pqxx::unique_violation&) {
    return false;  // a speculative start's workflow id is taken
  } catch (const pqxx::sql_error& e) {
    if (e.sqlstate() == "ITN01") return false;
    throw;
  }
}

}  // namespace itinera::store::internal
