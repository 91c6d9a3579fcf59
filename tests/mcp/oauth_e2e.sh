#!/usr/bin/env bash
# Itinera behind a real OAuth authorization server, end to end: starts the
# test authorization server (tests/mcp/oauth_server.mjs) and `itinera dev`
# with --mcp-authorization-server pointing at it, then runs
# tests/mcp/oauth_e2e.mjs (the official TypeScript SDK's OAuth client).
#   tests/mcp/oauth_e2e.sh ITINERA_BINARY
# Env: E2E_KEEP=1 keeps the temp dir (logs, data).
set -euo pipefail
# shellcheck source=tests/mcp/dev_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/dev_lib.sh"

mcp_itinera_arg "$@"
mcp_use_node
mcp_init oauth "${E2E_KEEP:-0}"
mcp_free_ports 3
read -r port supplier_port as_port <<<"${mcp_ports[*]}"
resource="http://127.0.0.1:$port/mcp"
issuer="http://127.0.0.1:$as_port/"

as_pid=""
stop_as() { if [ -n "$as_pid" ]; then kill -TERM "$as_pid" 2>/dev/null || true; wait "$as_pid" 2>/dev/null || true; fi; }
trap 'st=$?; stop_as; (exit "$st"); mcp_cleanup' EXIT

itn_log "starting the test authorization server on $issuer"
(cd "$ITINERA_ROOT/tests/mcp" && exec "$mcp_node" oauth_server.mjs --port "$as_port" --resource "$resource") \
  >"$mcp_work/as.log" 2>&1 &
as_pid=$!

# Key-set refreshes are not rate-limited here (--oauth-jwks-refresh 0): the
# test rotates the key right after presenting a token of an unknown one.
itn_log "starting itinera dev on 127.0.0.1:$port with OAuth"
mcp_start_dev "itinera dev (oauth)" "$mcp_work/dev.log" "$mcp_work/data" \
  --listen "127.0.0.1:$port" --supplier-listen "127.0.0.1:$supplier_port" \
  --mcp-resource-url "$resource" --mcp-authorization-server "$issuer" --oauth-jwks-refresh 0
mcp_wait_dev --dsn "$port" "$supplier_port" "$as_port"

status=0
mcp_run --cd "$ITINERA_ROOT/tests/mcp" timeout -k 10 "${E2E_PHASE_TIMEOUT:-240}" "$mcp_node" oauth_e2e.mjs \
  --url "$resource" --as "$issuer" --log "$mcp_work/dev.log" || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- $mcp_work/as.log (last 20 lines) ---"
  tail -n 20 "$mcp_work/as.log" || true
  itn_die "the OAuth end-to-end test failed (exit $status)"
fi
itn_log "the OAuth end-to-end test passed"
