#!/usr/bin/env bash
# Golden histories: every recorded history in a module's GOLDEN folder must
# replay cleanly against the workflow code in this build (a change that
# breaks running workflows fails here, before a deploy), and a tampered copy
# must be reported as a divergence (so the check itself can fail). Booking
# histories are recorded by booking_test with
# ITINERA_WRITE_GOLDEN=modules/booking/golden.
#   golden_replay.sh ITINERA_BINARY GOLDEN_DIR
set -euo pipefail
itinera="$1"
dir="$2"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
count=0
first_with_activity=""
for f in "$dir"/*.json; do
  [ -e "$f" ] || continue
  out="$("$itinera" workflow replay --history "$f")" || { echo "FAIL: $f: $out"; exit 1; }
  grep -q '^replays cleanly' <<<"$out" || { echo "FAIL: $f: $out"; exit 1; }
  echo "ok: $(basename "$f"): $out"
  count=$((count + 1))
  if [ -z "$first_with_activity" ] && grep -q '"activity_type": "' "$f"; then first_with_activity="$f"; fi
done
[ "$count" -gt 0 ] || { echo "FAIL: no golden histories in $dir"; exit 1; }
[ -n "$first_with_activity" ] || { echo "FAIL: no golden history in $dir schedules an activity to tamper with"; exit 1; }
# The same history with its first activity renamed, as if the code had changed.
sed -E '0,/"activity_type": "([^"]*)"/s//"activity_type": "\1.Renamed"/' "$first_with_activity" >"$tmp/tampered.json"
cmp -s "$first_with_activity" "$tmp/tampered.json" && { echo "FAIL: could not tamper with $first_with_activity"; exit 1; }
set +e
out="$("$itinera" workflow replay --history "$tmp/tampered.json")"
code=$?
set -e
if [ "$code" -ne 6 ] || ! grep -q 'ITN-NDE-001' <<<"$out"; then
  echo "FAIL: a tampered $(basename "$first_with_activity") was not reported as a divergence (exit $code): $out"
  exit 1
fi
echo "ok: tampered $(basename "$first_with_activity") reported: $out"
# A parent whose child is, by today's code, another workflow type (when the
# folder holds a history that starts a child).
first_with_child="$(grep -l '"start_child_workflow_execution_initiated_event_attributes"' "$dir"/*.json 2>/dev/null | head -1 || true)"
if [ -n "$first_with_child" ]; then
  sed -E '/"start_child_workflow_execution_initiated_event_attributes"/,/"workflow_type"/s/"workflow_type": "([^"]*)"/"workflow_type": "\1.Renamed"/' \
    "$first_with_child" >"$tmp/tampered_child.json"
  cmp -s "$first_with_child" "$tmp/tampered_child.json" && { echo "FAIL: could not tamper with $first_with_child"; exit 1; }
  set +e
  out="$("$itinera" workflow replay --history "$tmp/tampered_child.json")"
  code=$?
  set -e
  if [ "$code" -ne 6 ] || ! grep -q 'ITN-NDE-001' <<<"$out"; then
    echo "FAIL: a tampered parent history was not reported as a divergence (exit $code): $out"
    exit 1
  fi
  echo "ok: tampered parent $(basename "$first_with_child") reported: $out"
fi
