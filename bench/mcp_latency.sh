#!/usr/bin/env bash
# MCP tool-call latency: starts `itinera dev` (Release build in build-release/,
# its own private PostgreSQL and supplier simulator), books one trip, then
# times tools/call of get_booking and search_flights over Streamable HTTP
# (bench/mcp_latency.mjs: N sequential calls each after a warm-up, one
# session, a keep-alive client), with two baselines from the same run:
# `ping` over the same session (HTTP + session + JSON-RPC, no tool), and
# pgbench `SELECT 1` on dev's database (one round trip to PostgreSQL over its
# unix socket). Not part of ctest.
#   bench/mcp_latency.sh [--n N] [--warmup W] [--binary ITINERA]
# --binary skips the Release build and uses that itinera. The last line of the
# output is one JSON object with every figure.
set -euo pipefail
# shellcheck source=tests/mcp/dev_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/mcp/dev_lib.sh"

n=500
warmup=50
binary=""
while [ "$#" -gt 0 ]; do
  case "$1" in
    --n|--warmup|--binary)
      [ "$#" -ge 2 ] || itn_die "$1 needs a value"
      case "$1" in
        --n) n="$2" ;;
        --warmup) warmup="$2" ;;
        --binary) binary="$2" ;;
      esac
      shift 2 ;;
    --n=*) n="${1#*=}"; shift ;;
    --warmup=*) warmup="${1#*=}"; shift ;;
    --binary=*) binary="${1#*=}"; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) itn_die "unknown argument '$1' (see bench/mcp_latency.sh --help)" ;;
  esac
done
[[ "$n" =~ ^[1-9][0-9]*$ ]] || itn_die "--n: expected a positive integer, got '$n'"
[[ "$warmup" =~ ^[0-9]+$ ]] || itn_die "--warmup: expected a non-negative integer, got '$warmup'"

if [ -z "$binary" ]; then
  itn_install_packages
  itn_build build-release Release itinera
  binary="$ITINERA_ROOT/build-release/tools/itinera"
fi
mcp_use_itinera "$binary"
mcp_use_node
ITN_PG_BIN="$(itn_pg_bindir)" || itn_die "PostgreSQL binaries not found; install postgresql-15"
pgbench_bin="$ITN_PG_BIN/pgbench"
[ -x "$pgbench_bin" ] || pgbench_bin="$(command -v pgbench || true)"
[ -n "$pgbench_bin" ] || itn_die "pgbench not found in $ITN_PG_BIN or PATH (it ships with postgresql-15)"
mcp_init latency 0
mcp_free_ports 2
read -r port supplier_port <<<"${mcp_ports[*]}"

itn_log "starting itinera dev ($mcp_itinera) on 127.0.0.1:$port"
mcp_start_dev "itinera dev" "$mcp_work/dev.log" "$mcp_work/data" \
  --listen "127.0.0.1:$port" --supplier-listen "127.0.0.1:$supplier_port"
mcp_wait_dev --dsn "$port"

itn_log "timing tools/call ($n calls each after $warmup warm-up)"
mcp_run --out "$mcp_work/mcp.out" "$mcp_node" "$ITINERA_ROOT/bench/mcp_latency.mjs" \
  --url "http://127.0.0.1:$port/mcp" --supplier "http://127.0.0.1:$supplier_port" --n "$n" --warmup "$warmup" ||
  { cat "$mcp_work/mcp.out"; itn_die "bench/mcp_latency.mjs failed"; }
head -n -1 "$mcp_work/mcp.out"
client_json="$(tail -n 1 "$mcp_work/mcp.out")"

# PostgreSQL's own round trip on the same server: SELECT 1 on one connection,
# one transaction per query, each one's latency logged (-l, microseconds in
# the third column); the warm-up transactions are dropped.
itn_log "pgbench SELECT 1 baseline ($n after $warmup warm-up)"
dsn="$(cat "$mcp_work/data/dsn")"
printf 'SELECT 1;\n' >"$mcp_work/select1.sql"
chmod 644 "$mcp_work/select1.sql"
(cd "$mcp_work" && "$pgbench_bin" -n -f select1.sql -c 1 -j 1 -t $((n + warmup)) -l --log-prefix=pgbench "$dsn" \
  >"$mcp_work/select1.out" 2>&1) || { cat "$mcp_work/select1.out" >&2; itn_die "pgbench failed"; }
pg_json="$(cat "$mcp_work"/pgbench.[0-9]* | "$mcp_node" -e '
  const lines = require("fs").readFileSync(0, "utf8").trim().split("\n");
  const warmup = Number(process.argv[1]);
  const ms = lines.slice(warmup).map((l) => Number(l.split(/\s+/)[2]) / 1000).sort((a, b) => a - b);
  const pct = (p) => ms[Math.min(ms.length - 1, Math.ceil((p / 100) * ms.length) - 1)];
  const mean = ms.reduce((a, b) => a + b, 0) / ms.length;
  console.log(JSON.stringify({ label: "pgbench SELECT 1", n: ms.length, p50: pct(50), p90: pct(90), p99: pct(99),
    mean, max: ms[ms.length - 1] }));' "$warmup")"

# shellcheck disable=SC2016  # JavaScript, not shell
"$mcp_node" -e '
  const mcp = JSON.parse(process.argv[1]);
  const pg = JSON.parse(process.argv[2]);
  const f = (x) => x.toFixed(3).padStart(9);
  console.log(`${pg.label.padEnd(16)}${f(pg.p50)}${f(pg.p90)}${f(pg.p99)}${f(pg.mean)}${f(pg.max)}  (unix socket)`);
  const r = (a, b) => Number((a / b).toFixed(1));
  mcp.pgbench_select1 = pg;
  mcp.ratios.get_booking_vs_select1 = { p50: r(mcp.get_booking.p50, pg.p50), p99: r(mcp.get_booking.p99, pg.p99) };
  mcp.ratios.search_flights_vs_select1 = { p50: r(mcp.search_flights.p50, pg.p50), p99: r(mcp.search_flights.p99, pg.p99) };
  console.log(`ratios to pgbench SELECT 1: get_booking p50 x${mcp.ratios.get_booking_vs_select1.p50}, ` +
    `p99 x${mcp.ratios.get_booking_vs_select1.p99}; search_flights p50 x${mcp.ratios.search_flights_vs_select1.p50}, ` +
    `p99 x${mcp.ratios.search_flights_vs_select1.p99}`);
  console.log(JSON.stringify(mcp));' "$client_json" "$pg_json"
