#!/usr/bin/env bash
# End-to-end tests of the MCP server with the official TypeScript SDK client
# (tests/mcp/e2e.mjs, run on the pinned Node 22 of tests/mcp/package-lock.json):
#   1. `itinera dev` without auth: both transports (Streamable HTTP at /mcp, and
#      stdio through `itinera mcp --db <dev's database>`), phase "main";
#   2. that dev killed with SIGKILL and started again on the same data dir and
#      ports: the tasks started before are finished and read, phase
#      "after-restart";
#   3. another `itinera dev` with two tokens for two tenants (--token
#      tokA-acme-e2e-0001:acme --token tokB-globex-e2e-0002:globex): the
#      security tests, phase "security".
#   tests/mcp/e2e.sh ITINERA_BINARY
# Env: E2E_KEEP=1 keeps the temp dir (dev logs, data); E2E_ONLY=REGEX runs the
# tests whose names match (in every phase).
set -euo pipefail
# shellcheck source=tests/mcp/dev_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/dev_lib.sh"

mcp_itinera_arg "$@"
mcp_use_node
e2e="$ITINERA_ROOT/tests/mcp/e2e.mjs"
mcp_init e2e "${E2E_KEEP:-0}"
mcp_free_ports 4
read -r main_port supplier_port sec_port sec_supplier_port <<<"${mcp_ports[*]}"

# start_dev NAME LISTEN_PORT SUPPLIER_PORT DATA_DIR [EXTRA_ARGS...]: starts
# `itinera dev` in the background; returns once both ports accept connections
# and dev has written DATA_DIR/dsn.
start_dev() {
  local name="$1" port="$2" sport="$3" data="$4"
  shift 4
  itn_log "starting itinera dev ($name) on 127.0.0.1:$port, supplier on 127.0.0.1:$sport"
  mcp_start_dev "itinera dev ($name)" "$mcp_work/$name.log" "$data" \
    --listen "127.0.0.1:$port" --supplier-listen "127.0.0.1:$sport" "$@"
  mcp_wait_dev --dsn "$port" "$sport"
}

# run_phase PHASE PORT SUPPLIER_PORT: runs e2e.mjs in the background (mcp_run,
# so that TERM and INT are handled at once) under a deadline below ctest's.
failures=0
run_phase() {
  local phase="$1" port="$2" sport="$3" status=0
  itn_log "e2e phase \"$phase\""
  mcp_run --cd "$ITINERA_ROOT/tests/mcp" timeout -k 10 "${E2E_PHASE_TIMEOUT:-240}" "$mcp_node" "$e2e" \
    --phase "$phase" --itinera "$mcp_itinera" --url "http://127.0.0.1:$port/mcp" \
    --supplier "http://127.0.0.1:$sport" --data-dir "$mcp_dev_data" --state "$mcp_work/state.json" || status=$?
  if [ "$status" -ne 0 ]; then
    failures=$((failures + 1))
    echo "--- phase \"$phase\" failed (exit $status); $mcp_dev_log (last 30 lines) ---"
    tail -n 30 "$mcp_dev_log" || true
  fi
  return 0
}

# 1. Both transports against a dev without auth.
start_dev main "$main_port" "$supplier_port" "$mcp_work/data"
run_phase main "$main_port" "$supplier_port"

# 2. SIGKILL, then the same data dir and ports again.
if [ -f "$mcp_work/state.json" ]; then
  itn_log "killing itinera dev (pid $mcp_dev_pid) with SIGKILL"
  kill -KILL "$mcp_dev_pid"
  wait "$mcp_dev_pid" 2>/dev/null || true
  mcp_dev_pid=""
  start_dev main-restarted "$main_port" "$supplier_port" "$mcp_work/data"
  run_phase after-restart "$main_port" "$supplier_port"
elif [ -n "${E2E_ONLY:-}" ]; then
  itn_log "E2E_ONLY left out the tasks of the restart test; not restarting"
else
  echo "FAIL restart: phase \"main\" wrote no $mcp_work/state.json; the restart phase did not run"
  failures=$((failures + 1))
fi
mcp_stop_dev

# 3. Auth on: two tokens for two tenants.
start_dev secure "$sec_port" "$sec_supplier_port" "$mcp_work/data-secure" \
  --token tokA-acme-e2e-0001:acme --token tokB-globex-e2e-0002:globex
run_phase security "$sec_port" "$sec_supplier_port"
mcp_stop_dev

[ "$failures" -eq 0 ] || itn_die "$failures e2e phase(s) failed; see the FAIL lines above"
itn_log "all MCP end-to-end tests passed"
