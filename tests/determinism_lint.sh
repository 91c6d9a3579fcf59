#!/usr/bin/env bash
# Workflow code is replayed, so it must not read wall clocks, start threads,
# open sockets or draw its own random numbers: those come from the
# WorkflowContext. This check keeps such calls out of the workflow sources it
# is given (each module's WORKFLOWS, cmake/ItineraModule.cmake).
#   determinism_lint.sh FILE...
set -euo pipefail
pattern='system_clock|steady_clock|high_resolution_clock|std::thread|std::async|std::rand\b|\brand\(|random_device|mt19937|\btime\(|gettimeofday|clock_gettime|socket\(|<thread>|<random>|sleep_for|sleep_until'
[ "$#" -gt 0 ] || { echo "determinism_lint: no workflow sources given"; exit 1; }
status=0
for f in "$@"; do
  [ -f "$f" ] || { echo "determinism_lint: $f: no such file"; status=1; continue; }
  # Activities may sit beside a workflow in one file (the sample does): only
  # check the workflow functions, i.e. the code before the registration
  # (ITINERA_MODULE(...) or a void Register... function).
  body="$(sed '/^void Register/,$d; /^ITINERA_MODULE(/,$d' "$f")"
  if grep -nE "$pattern" <<<"$body" >/tmp/determinism_lint.$$; then
    sed "s|^|$f:|" /tmp/determinism_lint.$$
    status=1
  fi
done
rm -f /tmp/determinism_lint.$$
if [ "$status" -ne 0 ]; then
  echo "determinism_lint: workflow code must take time, randomness and I/O from WorkflowContext"
else
  echo "determinism_lint: $# workflow sources are clean"
fi
exit "$status"
