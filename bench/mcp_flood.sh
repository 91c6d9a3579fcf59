#!/usr/bin/env bash
# MCP under a flood, on loopback: starts `itinera dev` (Release build in
# build-release/, its own private PostgreSQL and supplier) with bearer tokens
# for two tenants, then
#   1. the quiet tenant alone: --quiet agents, each calling --tool about every
#      --interval-ms for --seconds (the baseline);
#   2. the same again while the flooding tenant's agents (1,000 agents in
#      all) call back to back, ignoring Retry-After.
# Each side is its own Node process (bench/mcp_flood.mjs) so the flood's
# client does not slow the quiet one's. RSS of the dev process is sampled
# every 0.2 s; its peak is the kernel's VmHWM. It reports whether dev
# survived, the flood's outcomes (429s expected), and the quiet tenant's p99
# latency with the flood over without. Bounded: every phase has a deadline
# and the flood a request budget. Not part of ctest.
#   bench/mcp_flood.sh [--agents 1000] [--quiet 20] [--seconds 15] [--interval-ms 400]
#                      [--tool list_bookings] [--binary ITINERA] [-- DEV_ARGS...]
# DEV_ARGS go to `itinera dev` (e.g. --mcp-tool-rate 20). The last line of the
# output is one JSON object with every figure.
set -euo pipefail
# shellcheck source=tests/mcp/dev_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/mcp/dev_lib.sh"

agents=1000
quiet=20
seconds=15
interval=400
tool=list_bookings
binary=""
dev_args=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --agents|--quiet|--seconds|--interval-ms|--tool|--binary)
      [ "$#" -ge 2 ] || itn_die "$1 needs a value"
      case "$1" in
        --agents) agents="$2" ;;
        --quiet) quiet="$2" ;;
        --seconds) seconds="$2" ;;
        --interval-ms) interval="$2" ;;
        --tool) tool="$2" ;;
        --binary) binary="$2" ;;
      esac
      shift 2 ;;
    --) shift; dev_args=("$@"); break ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) itn_die "unknown argument '$1' (see bench/mcp_flood.sh --help)" ;;
  esac
done
for v in agents quiet seconds interval; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || itn_die "--$v: expected a positive integer, got '${!v}'"
done
[ "$quiet" -lt "$agents" ] || itn_die "--quiet must be fewer than --agents"
flooders=$((agents - quiet))

if [ -z "$binary" ]; then
  itn_install_packages
  itn_build build-release Release itinera
  binary="$ITINERA_ROOT/build-release/tools/itinera"
fi
mcp_use_itinera "$binary"
mcp_use_node
mcp_init flood 0
mcp_free_ports 2
read -r port supplier_port <<<"${mcp_ports[*]}"
quiet_token="quiet-tenant-token-0123456789"
flood_token="flood-tenant-token-0123456789"

itn_log "starting itinera dev ($mcp_itinera) on 127.0.0.1:$port"
mcp_start_dev "itinera dev" "$mcp_work/dev.log" "$mcp_work/data" \
  --listen "127.0.0.1:$port" --supplier-listen "127.0.0.1:$supplier_port" \
  --token "$quiet_token:quiet" --token "$flood_token:flood" "${dev_args[@]}"
mcp_wait_dev --dsn "$port"
dev_pid="$mcp_dev_pid"

# RSS samples (kB) of the dev process until the file flag goes.
touch "$mcp_work/sampling"
(
  while [ -e "$mcp_work/sampling" ] && kill -0 "$dev_pid" 2>/dev/null; do
    awk '/^VmRSS:/ {print $2}' "/proc/$dev_pid/status" >>"$mcp_work/rss" 2>/dev/null || true
    sleep 0.2
  done
) &
sampler=$!

client=("$mcp_node" "$ITINERA_ROOT/bench/mcp_flood.mjs" --url "http://127.0.0.1:$port/mcp" --tool "$tool"
  --interval-ms "$interval")

itn_log "baseline: $quiet quiet agents, one $tool call each about every ${interval} ms, for ${seconds} s"
mcp_run --out "$mcp_work/baseline.json" "${client[@]}" --role quiet --agents "$quiet" --token "$quiet_token" \
  --seconds "$seconds" || itn_die "the baseline client failed"
rss_before_flood="$(tail -n 1 "$mcp_work/rss")"

itn_log "flood: $flooders flooding agents back to back, with the $quiet quiet agents ($agents in all)"
# The flood goes on a little longer than the quiet side, which starts once
# every flooding session is open; a request budget bounds it too.
"${client[@]}" --role flood --agents "$flooders" --token "$flood_token" --seconds $((seconds + 8)) \
  --max-requests 3000000 --ready-file "$mcp_work/flood.ready" >"$mcp_work/flood.json" &
flood_pid=$!
for _ in $(seq 1 600); do
  [ -e "$mcp_work/flood.ready" ] && break
  kill -0 "$flood_pid" 2>/dev/null || break
  sleep 0.1
done
[ -e "$mcp_work/flood.ready" ] || itn_die "the flooding sessions did not open"
sleep 2  # the flood at full speed
mcp_run --out "$mcp_work/during.json" "${client[@]}" --role quiet --agents "$quiet" --token "$quiet_token" \
  --seconds "$seconds" || itn_die "the quiet client failed during the flood"
wait "$flood_pid" || itn_die "the flood client failed"

alive=false
kill -0 "$dev_pid" 2>/dev/null && alive=true
metrics="$(curl -sf "http://127.0.0.1:$port/metrics" || true)"
rm -f "$mcp_work/sampling"
wait "$sampler" 2>/dev/null || true
peak_kb="$(awk '/^VmHWM:/ {print $2}' "/proc/$dev_pid/status" 2>/dev/null || echo 0)"
max_sampled_kb="$(sort -n "$mcp_work/rss" | tail -n 1)"
refused_rate="$(printf '%s\n' "$metrics" | awk '/^itinera_mcp_tenant_refusals_total\{tenant="flood",limit="rate"\}/ {print $2}')"
refused_calls="$(printf '%s\n' "$metrics" | awk '/^itinera_mcp_tenant_refusals_total\{tenant="flood",limit="tool_calls"\}/ {print $2}')"
refused_quiet="$(printf '%s\n' "$metrics" | awk '/^itinera_mcp_tenant_refusals_total\{tenant="quiet",/ {s += $2} END {print s + 0}')"
refused_conns="$(printf '%s\n' "$metrics" | awk '/^itinera_http_refusals_total\{server="admin",reason="connection_limit"\}/ {print $2}')"

# shellcheck disable=SC2016  # JavaScript, not shell
"$mcp_node" -e '
  const [base, during, flood] = [1, 2, 13].map((i) => JSON.parse(process.argv[i]));
  const num = (s) => (s === "" || s === undefined ? 0 : Number(s));
  const out = {
    agents: Number(process.argv[3]), flooders: Number(process.argv[4]), tool: base.tool,
    dev_alive_after: process.argv[5] === "true",
    rss_kb: { before_flood: num(process.argv[6]), max_sampled: num(process.argv[7]), peak_vmhwm: num(process.argv[8]) },
    server_refusals: { flood_rate: num(process.argv[9]), flood_tool_calls: num(process.argv[10]),
      quiet_any: num(process.argv[11]), connection_limit: num(process.argv[12]) },
    quiet_baseline: base, quiet_during_flood: during, flood,
    ratio_p99: Number((during.latency_ms.p99 / base.latency_ms.p99).toFixed(2)),
    ratio_p50: Number((during.latency_ms.p50 / base.latency_ms.p50).toFixed(2)),
  };
  const ms = (x) => `${x.toFixed(1)} ms`;
  console.log(`quiet ${out.tool} p50/p99 alone:      ${ms(base.latency_ms.p50)} / ${ms(base.latency_ms.p99)} (${base.ok} calls)`);
  console.log(`quiet ${out.tool} p50/p99 with flood: ${ms(during.latency_ms.p50)} / ${ms(during.latency_ms.p99)} (${during.ok} calls, ${during.limited} 429s)`);
  console.log(`p99 with flood / alone: x${out.ratio_p99} (target: within x3)`);
  console.log(`flood: ${flood.requests} calls, ${flood.ok} answered, ${flood.limited} got 429 (Retry-After ${flood.retry_after.join(",")}), ` +
    `${flood.refused_connection} 503, ${flood.network_error} network errors`);
  console.log(`refused by the server: flood ${out.server_refusals.flood_rate} rate + ${out.server_refusals.flood_tool_calls} tool_calls; quiet ${out.server_refusals.quiet_any}`);
  console.log(`dev alive after: ${out.dev_alive_after}; RSS peak ${(out.rss_kb.peak_vmhwm / 1024).toFixed(0)} MiB ` +
    `(before the flood ${(out.rss_kb.before_flood / 1024).toFixed(0)} MiB)`);
  console.log(JSON.stringify(out));' \
  "$(cat "$mcp_work/baseline.json")" "$(cat "$mcp_work/during.json")" "$agents" "$flooders" "$alive" \
  "$rss_before_flood" "$max_sampled_kb" "$peak_kb" "$refused_rate" "$refused_calls" "$refused_quiet" "$refused_conns" \
  "$(cat "$mcp_work/flood.json")"
[ "$alive" = true ] || itn_die "itinera dev did not survive the flood"
