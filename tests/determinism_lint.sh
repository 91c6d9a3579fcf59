#!/usr/bin/env bash
# Workflow code is replayed, so it must not read wall clocks, start threads,
# open sockets or draw its own random numbers: those come from the
# WorkflowContext. This check keeps such calls out of workflow sources
# (workflows/ and the workflow half of examples/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pattern='system_clock|steady_clock|high_resolution_clock|std::thread|std::async|std::rand\b|\brand\(|random_device|mt19937|\btime\(|gettimeofday|clock_gettime|socket\(|<thread>|<random>|sleep_for|sleep_until'
files=()
while IFS= read -r f; do files+=("$f"); done < <(find "$root/workflows" "$root/examples" -name '*.cc' -o -name '*.h' 2>/dev/null | sort)
[ "${#files[@]}" -gt 0 ] || { echo "determinism_lint: no workflow sources found"; exit 1; }
status=0
for f in "${files[@]}"; do
  # Activities live beside workflows in examples/: only check the workflow
  # functions, i.e. code before the RegisterExamples/Register* section.
  body="$(sed '/^void Register/,$d' "$f")"
  if grep -nE "$pattern" <<<"$body" >/tmp/determinism_lint.$$; then
    sed "s|^|$f:|" /tmp/determinism_lint.$$
    status=1
  fi
done
rm -f /tmp/determinism_lint.$$
if [ "$status" -ne 0 ]; then
  echo "determinism_lint: workflow code must take time, randomness and I/O from WorkflowContext"
else
  echo "determinism_lint: ${#files[@]} workflow sources are clean"
fi
exit "$status"
