#!/usr/bin/env bash
# Runs the official MCP conformance suite (npm @modelcontextprotocol/conformance,
# pinned in tests/mcp/package-lock.json; the "all" server suite: the active
# scenarios and the pending ones) against `itinera dev --conformance-fixtures`
# over Streamable HTTP. Every scenario must pass: there is no
# expected-failures list. Prints the suite's summary.
#   tests/mcp/conformance.sh ITINERA_BINARY
# Env: CONFORMANCE_SCENARIO=NAME runs one scenario instead of the suite;
#      CONFORMANCE_KEEP=1 keeps the temp dir (server log, suite output).
set -euo pipefail
# shellcheck source=tests/mcp/dev_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/dev_lib.sh"

mcp_itinera_arg "$@"
mcp_use_node
suite="$ITINERA_ROOT/tests/mcp/node_modules/@modelcontextprotocol/conformance/dist/index.js"
mcp_init conformance "${CONFORMANCE_KEEP:-0}"
mcp_free_ports 1
port="${mcp_ports[0]}"

itn_log "starting itinera dev --conformance-fixtures on 127.0.0.1:$port"
mcp_start_dev "itinera dev" "$mcp_work/dev.log" "$mcp_work/data" \
  --conformance-fixtures --listen "127.0.0.1:$port" --supplier-listen off
mcp_wait_dev "$port"

url="http://127.0.0.1:$port/mcp"
args=(server --url "$url" -o "$mcp_work/results")
if [ -n "${CONFORMANCE_SCENARIO:-}" ]; then
  args+=(--scenario "$CONFORMANCE_SCENARIO")
else
  args+=(--suite all)
fi
itn_log "running the conformance suite against $url"
# In the background (mcp_run), so that TERM and INT are handled at once, and
# with a deadline below ctest's 600 s, so that a hung scenario still ends
# with the server stopped.
status=0
mcp_run --cd "$ITINERA_ROOT/tests/mcp" --log "$mcp_work/suite.log" \
  timeout -k 10 "${CONFORMANCE_TIMEOUT:-450}" "$mcp_node" "$suite" "${args[@]}" || status=$?
cat "$mcp_work/suite.log"

summary="$(grep -E '^Total: [0-9]+ passed, [0-9]+ failed' "$mcp_work/suite.log" | tail -n 1 || true)"
failed_scenarios="$(grep -cE '^✗ ' "$mcp_work/suite.log" || true)"
if [ -n "${CONFORMANCE_SCENARIO:-}" ]; then
  summary="$(grep -E '^(Passed|Failed|Total|Checks)' "$mcp_work/suite.log" | tail -n 1 || true)"
fi
echo
echo "conformance: ${summary:-no summary line (the suite did not finish)}"
[ "$status" -eq 0 ] || itn_die "the conformance suite failed (exit $status)"
[ "${failed_scenarios:-0}" -eq 0 ] || itn_die "$failed_scenarios scenario(s) failed"
[ -n "$summary" ] || [ -n "${CONFORMANCE_SCENARIO:-}" ] || itn_die "the conformance suite printed no summary"
