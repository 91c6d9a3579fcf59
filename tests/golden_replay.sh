#!/usr/bin/env bash
# Golden histories: every recorded history under examples/golden and
# workflows/golden must replay cleanly against the workflow code in this
# build (a change that breaks running workflows fails here, before a
# deploy), and a tampered copy must be reported as a divergence (so the
# check itself can fail). Booking histories are recorded by booking_test
# with ITINERA_WRITE_GOLDEN=workflows/golden.
set -euo pipefail
itinera="$1"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
count=0
for f in "$root"/examples/golden/*.json "$root"/workflows/golden/*.json; do
  [ -e "$f" ] || continue
  out="$("$itinera" workflow replay --history "$f")" || { echo "FAIL: $f: $out"; exit 1; }
  grep -q '^replays cleanly' <<<"$out" || { echo "FAIL: $f: $out"; exit 1; }
  echo "ok: $(basename "$f"): $out"
  count=$((count + 1))
done
[ "$count" -gt 0 ] || { echo "FAIL: no golden histories found"; exit 1; }
# The same history with the second activity renamed, as if the code changed.
sed '0,/"activity_type": "Notify"\|"activity_type": "Confirm"/s//"activity_type": "Renamed"/' \
  "$root/examples/golden/trip_reminder_confirmed.json" >"$tmp/tampered.json"
set +e
out="$("$itinera" workflow replay --history "$tmp/tampered.json")"
code=$?
set -e
if [ "$code" -ne 6 ] || ! grep -q 'ITN-NDE-001' <<<"$out"; then
  echo "FAIL: a tampered history was not reported as a divergence (exit $code): $out"
  exit 1
fi
echo "ok: tampered history reported: $out"
# A booking history whose flight hold was, by today's code, another activity.
sed '0,/"activity_type": "flights.Hold"/s//"activity_type": "flights.Reserve"/' \
  "$root/workflows/golden/book_trip_booked.json" >"$tmp/tampered_booking.json"
set +e
out="$("$itinera" workflow replay --history "$tmp/tampered_booking.json")"
code=$?
set -e
if [ "$code" -ne 6 ] || ! grep -q 'ITN-NDE-001' <<<"$out"; then
  echo "FAIL: a tampered booking history was not reported as a divergence (exit $code): $out"
  exit 1
fi
echo "ok: tampered booking history reported: $out"
# A parent whose child, by today's code, is another workflow type.
sed '0,/"workflow_type": "TripReminder"/s//"workflow_type": "Renamed"/' \
  "$root/examples/golden/trip_planner_confirmed.json" >"$tmp/tampered_child.json"
set +e
out="$("$itinera" workflow replay --history "$tmp/tampered_child.json")"
code=$?
set -e
if [ "$code" -ne 6 ] || ! grep -q 'ITN-NDE-001' <<<"$out"; then
  echo "FAIL: a tampered parent history was not reported as a divergence (exit $code): $out"
  exit 1
fi
echo "ok: tampered parent history reported: $out"
