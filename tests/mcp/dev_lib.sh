# Shared by the scripts that run a private `itinera dev` for the MCP server:
# tests/mcp/conformance.sh, tests/mcp/e2e.sh and bench/mcp_latency.sh. It
# checks the itinera binary, makes the temp dir, picks free loopback ports,
# starts dev in the background and waits until it is ready, runs clients in
# the background (so that TERM and INT are handled at once: bash defers traps
# while a foreground child runs), and cleans up on exit: stops dev (TERM,
# then KILL after 30 s), prints its log tail on failure, stops a PostgreSQL
# a dev left running, and removes the temp dir.
#
# Source it after `set -euo pipefail` (it sources scripts/lib.sh); it defines
# functions and runs nothing. The order of use:
#   mcp_itinera_arg "$@" (or mcp_use_itinera PATH)   sets mcp_itinera
#   mcp_use_node                                     sets mcp_node
#   mcp_init NAME KEEP          sets mcp_work and the EXIT, TERM and INT traps
#   mcp_free_ports N                                 sets mcp_ports
#   mcp_start_dev LABEL LOG DATA_DIR DEV_ARGS...; mcp_wait_dev [--dsn] PORT...
#   mcp_run [--cd DIR] [--out|--log FILE] CMD...     each client
#   mcp_stop_dev                                     or leave it to the trap
# shellcheck shell=bash

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

mcp_itinera=""   # absolute path of the itinera binary
mcp_node=""      # the pinned Node 22 (itn_node_deps)
mcp_work=""      # the temp dir
mcp_keep=0       # 1: the EXIT trap keeps mcp_work
mcp_ports=()     # what mcp_free_ports found
mcp_dev_pid=""   # the running `itinera dev`, if any
mcp_dev_label="" # how messages name it, e.g. "itinera dev (main)"
mcp_dev_log=""   # its output
mcp_dev_data=""  # its data dir
mcp_data_dirs=() # every data dir a dev ran on, for the PostgreSQL safety net
mcp_child_pid="" # the client mcp_run is waiting for, if any

# mcp_itinera_arg "$@": the script's one argument, ITINERA_BINARY.
mcp_itinera_arg() {
  [ "$#" -eq 1 ] || itn_die "usage: $0 ITINERA_BINARY"
  mcp_use_itinera "$1"
}

# mcp_use_itinera PATH: sets mcp_itinera to the absolute PATH, an executable.
mcp_use_itinera() {
  mcp_itinera="$(realpath "$1")"
  [ -x "$mcp_itinera" ] || itn_die "$mcp_itinera is not an executable"
}

# mcp_use_node: installs the pinned MCP tooling if need be; sets mcp_node.
mcp_use_node() {
  mcp_node="$(itn_node_deps)"
}

# mcp_init NAME KEEP: makes the temp dir /tmp/itinera-mcp-NAME.XXXXXX (kept
# at exit when KEEP is 1) and sets the traps: mcp_cleanup on EXIT, and exit
# at once on TERM (143) and INT (130).
mcp_init() {
  # The private Postgres of `itinera dev` runs as an unprivileged user when
  # we are root, so the temp dir must be searchable by others.
  mcp_work="$(mktemp -d "/tmp/itinera-mcp-$1.XXXXXX")"
  chmod 755 "$mcp_work"
  mcp_keep="$2"
  trap mcp_cleanup EXIT
  trap 'exit 143' TERM
  trap 'exit 130' INT
}

# mcp_free_ports N: N free loopback ports in mcp_ports. The kernel picks them
# (all held at once, so they differ); we release them and hand them on.
mcp_free_ports() {
  local n="$1" ports
  ports="$("$mcp_node" -e '
    const net = require("net");
    const servers = Array.from({ length: Number(process.argv[1]) }, () => net.createServer());
    let ready = 0;
    for (const s of servers) s.listen(0, "127.0.0.1", () => {
      if (++ready < servers.length) return;
      console.log(servers.map((x) => x.address().port).join(" "));
      for (const x of servers) x.close();
    });' "$n")"
  read -r -a mcp_ports <<<"$ports"
  [ "${#mcp_ports[@]}" -eq "$n" ] || itn_die "wanted $n free loopback ports, got '$ports'"
}

# mcp_start_dev LABEL LOG DATA_DIR [DEV_ARGS...]: starts
# `$mcp_itinera dev DEV_ARGS... --data-dir DATA_DIR` in the background, its
# output in LOG; LABEL names it in messages. Follow with mcp_wait_dev.
mcp_start_dev() {
  mcp_dev_label="$1"
  mcp_dev_log="$2"
  mcp_dev_data="$3"
  shift 3
  mcp_data_dirs+=("$mcp_dev_data")
  "$mcp_itinera" dev "$@" --data-dir "$mcp_dev_data" >"$mcp_dev_log" 2>&1 &
  mcp_dev_pid=$!
}

# mcp_wait_dev [--dsn] PORT...: returns once every PORT accepts connections on
# 127.0.0.1 (Postgres, migrations and the workers come first) and, with
# --dsn, dev has written DATA_DIR/dsn; dies if dev exits or after two minutes.
mcp_wait_dev() {
  local want_dsn=0 i port ready
  if [ "${1:-}" = --dsn ]; then
    want_dsn=1
    shift
  fi
  for i in $(seq 1 1200); do
    kill -0 "$mcp_dev_pid" 2>/dev/null || itn_die "$mcp_dev_label exited before listening; its log is below"
    ready=1
    for port in "$@"; do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { ready=0; break; }
    done
    if [ "$ready" -eq 1 ] && { [ "$want_dsn" -eq 0 ] || [ -s "$mcp_dev_data/dsn" ]; }; then
      return 0
    fi
    [ "$i" -eq 1200 ] && itn_die "$mcp_dev_label did not listen on 127.0.0.1:$1 within 120 s"
    sleep 0.1
  done
}

# mcp_stop_dev: stops the running dev, if any: TERM (it stops its workers and
# its Postgres), KILL after 30 s.
mcp_stop_dev() {
  [ -n "$mcp_dev_pid" ] || return 0
  if kill -0 "$mcp_dev_pid" 2>/dev/null; then
    kill -TERM "$mcp_dev_pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$mcp_dev_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$mcp_dev_pid" 2>/dev/null || true
  fi
  wait "$mcp_dev_pid" 2>/dev/null || true
  mcp_dev_pid=""
}

# mcp_stop_leftover_postgres: a Postgres left running by a dev that could not
# stop it (killed, and not restarted): stops it by the pid in its
# postmaster.pid (SIGQUIT is an immediate shutdown).
mcp_stop_leftover_postgres() {
  local dir pid
  for dir in "${mcp_data_dirs[@]}"; do
    [ -f "$dir/pgdata/postmaster.pid" ] || continue
    pid="$(head -n 1 "$dir/pgdata/postmaster.pid" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    kill -0 "$pid" 2>/dev/null || continue
    # Not a pid that a crashed server left behind and another process reuses.
    [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = postgres ] || continue
    itn_log "stopping the PostgreSQL left running on $dir (pid $pid)"
    kill -QUIT "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
}

# mcp_run [--cd DIR] [--out FILE | --log FILE] CMD...: runs CMD (in DIR; its
# stdout to FILE with --out, stdout and stderr with --log) in the background
# and waits for it, so that TERM and INT are handled at once; returns its exit
# status. The EXIT trap TERMs it if the script ends first. (Redirect here, not
# around the call: the traps run inside it and their output would go along.)
mcp_run() {
  local dir=. out="" log="" status=0
  while [ "$#" -gt 0 ]; do
    case "$1" in
      --cd) dir="$2" ;;
      --out) out="$2" ;;
      --log) log="$2" ;;
      *) break ;;
    esac
    shift 2
  done
  (
    cd "$dir" || exit
    if [ -n "$out" ]; then exec >"$out"; fi
    if [ -n "$log" ]; then exec >"$log" 2>&1; fi
    exec "$@"
  ) &
  mcp_child_pid=$!
  wait "$mcp_child_pid" || status=$?
  mcp_child_pid=""
  return "$status"
}

# The EXIT trap (mcp_init): stops the client and dev, prints the tail of dev's
# log if the script failed, stops a leftover Postgres, removes the temp dir.
mcp_cleanup() {
  local status=$?
  if [ -n "$mcp_child_pid" ]; then kill -TERM "$mcp_child_pid" 2>/dev/null || true; fi
  mcp_stop_dev
  if [ "$status" -ne 0 ] && [ -n "$mcp_dev_log" ] && [ -f "$mcp_dev_log" ]; then
    echo "--- $mcp_dev_log (last 40 lines) ---" >&2
    tail -n 40 "$mcp_dev_log" >&2 || true
  fi
  mcp_stop_leftover_postgres
  if [ "$mcp_keep" = 1 ]; then
    itn_log "kept $mcp_work"
  else
    rm -rf "$mcp_work"
  fi
  exit "$status"
}
