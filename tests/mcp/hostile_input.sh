#!/usr/bin/env bash
# No input crashes the process: starts `itinera dev` and runs
# tests/mcp/hostile_input.mjs (on the pinned Node 22), which sends JSON
# nested 100,000 deep, deep objects, long strings, numbers past every type,
# bytes that are not UTF-8, truncated JSON and duplicate keys to every HTTP
# endpoint (/mcp after initialize, /admin/v1/, the supplier simulator), to
# `itinera mcp` on stdio and to `itinera workflow start --input`. Each must
# be refused with a 4xx or a JSON-RPC error naming the problem, while dev
# stays alive and keeps serving valid requests.
#   tests/mcp/hostile_input.sh ITINERA_BINARY
# Env: HOSTILE_KEEP=1 keeps the temp dir (dev's log).
set -euo pipefail
# shellcheck source=tests/mcp/dev_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/dev_lib.sh"

mcp_itinera_arg "$@"
mcp_use_node
mcp_init hostile "${HOSTILE_KEEP:-0}"
mcp_free_ports 2
read -r port supplier_port <<<"${mcp_ports[*]}"

itn_log "starting itinera dev on 127.0.0.1:$port, supplier on 127.0.0.1:$supplier_port"
mcp_start_dev "itinera dev" "$mcp_work/dev.log" "$mcp_work/data" \
  --listen "127.0.0.1:$port" --supplier-listen "127.0.0.1:$supplier_port"
mcp_wait_dev --dsn "$port" "$supplier_port"

status=0
mcp_run --cd "$ITINERA_ROOT/tests/mcp" timeout -k 10 "${HOSTILE_TIMEOUT:-300}" "$mcp_node" \
  "$ITINERA_ROOT/tests/mcp/hostile_input.mjs" --itinera "$mcp_itinera" --url "http://127.0.0.1:$port" \
  --supplier "http://127.0.0.1:$supplier_port" --dsn "$(cat "$mcp_work/data/dsn")" --pid "$mcp_dev_pid" || status=$?
kill -0 "$mcp_dev_pid" 2>/dev/null || itn_die "itinera dev is gone; its log is below"
[ "$status" -eq 0 ] || itn_die "hostile input tests failed (exit $status); see the FAIL lines above"
itn_log "every hostile input was refused and itinera dev kept serving"
