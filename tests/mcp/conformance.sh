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
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

[ "$#" -eq 1 ] || itn_die "usage: $0 ITINERA_BINARY"
itinera="$(realpath "$1")"
[ -x "$itinera" ] || itn_die "$itinera is not an executable"

node="$(itn_node_deps)"
suite="$ITINERA_ROOT/tests/mcp/node_modules/@modelcontextprotocol/conformance/dist/index.js"

# The private Postgres of `itinera dev` runs as an unprivileged user when we
# are root, so the temp dir must be searchable by others.
work="$(mktemp -d /tmp/itinera-mcp-conformance.XXXXXX)"
chmod 755 "$work"
server_pid=""
suite_pid=""
cleanup() {
  local status=$?
  [ -n "$suite_pid" ] && kill -TERM "$suite_pid" 2>/dev/null || true
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    # dev stops its workers and its Postgres on TERM; give it time to.
    for _ in $(seq 1 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$work/dev.log" ]; then
    echo "--- itinera dev log (last 40 lines) ---" >&2
    tail -n 40 "$work/dev.log" >&2 || true
  fi
  if [ "${CONFORMANCE_KEEP:-0}" = 1 ]; then
    itn_log "kept $work"
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# A free loopback port: the kernel picks one, we release it and hand it on.
port="$("$node" -e '
  const s = require("net").createServer();
  s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')"

itn_log "starting itinera dev --conformance-fixtures on 127.0.0.1:$port"
"$itinera" dev --conformance-fixtures --listen "127.0.0.1:$port" --supplier-listen off \
  --data-dir "$work/data" >"$work/dev.log" 2>&1 &
server_pid=$!

# Ready when the port accepts connections (Postgres, migrations and the
# workers come first); give up if dev exits or after two minutes.
for i in $(seq 1 1200); do
  kill -0 "$server_pid" 2>/dev/null || itn_die "itinera dev exited before listening; its log is below"
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  [ "$i" -eq 1200 ] && itn_die "itinera dev did not listen on 127.0.0.1:$port within 120 s"
  sleep 0.1
done

url="http://127.0.0.1:$port/mcp"
args=(server --url "$url" -o "$work/results")
if [ -n "${CONFORMANCE_SCENARIO:-}" ]; then
  args+=(--scenario "$CONFORMANCE_SCENARIO")
else
  args+=(--suite all)
fi
itn_log "running the conformance suite against $url"
# In the background, so that TERM and INT are handled at once (bash defers
# traps while a foreground child runs), and with a deadline below ctest's
# 600 s, so that a hung scenario still ends with the server stopped.
(cd "$ITINERA_ROOT/tests/mcp" &&
  exec timeout -k 10 "${CONFORMANCE_TIMEOUT:-450}" "$node" "$suite" "${args[@]}") >"$work/suite.log" 2>&1 &
suite_pid=$!
status=0
wait "$suite_pid" || status=$?
suite_pid=""
cat "$work/suite.log"

summary="$(grep -E '^Total: [0-9]+ passed, [0-9]+ failed' "$work/suite.log" | tail -n 1 || true)"
failed_scenarios="$(grep -cE '^✗ ' "$work/suite.log" || true)"
if [ -n "${CONFORMANCE_SCENARIO:-}" ]; then
  summary="$(grep -E '^(Passed|Failed|Total|Checks)' "$work/suite.log" | tail -n 1 || true)"
fi
echo
echo "conformance: ${summary:-no summary line (the suite did not finish)}"
[ "$status" -eq 0 ] || itn_die "the conformance suite failed (exit $status)"
[ "${failed_scenarios:-0}" -eq 0 ] || itn_die "$failed_scenarios scenario(s) failed"
[ -n "$summary" ] || [ -n "${CONFORMANCE_SCENARIO:-}" ] || itn_die "the conformance suite printed no summary"
