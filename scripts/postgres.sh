#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and benchmarks: fsync off (an OS crash may lose
# data; a stopped or killed server loses nothing it acknowledged — commits stay synchronous,
# since the outage tests stop it with `-m immediate` and count every acknowledged write),
# trust authentication, loopback only, its socket inside its own directory.
#
#   scripts/postgres.sh install            installs the Debian package `postgresql` if no
#                                          PostgreSQL binaries are found
#   scripts/postgres.sh start DIR PORT     initdb in DIR (if empty) and start on PORT;
#                                          prints the URL (postgres://keyward@127.0.0.1:PORT/postgres)
#   scripts/postgres.sh stop DIR           stops it (immediately: tests do not need a clean
#                                          shutdown)
#
# initdb refuses to run as root; as root the cluster belongs to the `postgres` system user
# (which the Debian package creates).
set -euo pipefail

bindir() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    if [ -x "$dir/initdb" ]; then echo "$dir"; return 0; fi
  done
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
  return 1
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

install() {
  bindir >/dev/null && return 0
  echo "installing postgresql (Debian)…" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null 2>&1 ||
    { echo "scripts/postgres.sh: PostgreSQL could not be installed" >&2; exit 1; }
  bindir >/dev/null || { echo "scripts/postgres.sh: no initdb after installing postgresql" >&2; exit 1; }
}

start() {
  local dir="$1" port="$2" bin
  bin=$(bindir) || { echo "scripts/postgres.sh: PostgreSQL is not installed (run: scripts/postgres.sh install)" >&2; exit 1; }
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; chmod 700 "$dir"; fi
  if [ ! -f "$dir/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$dir" -U keyward -A trust -E UTF8 --locale=C --no-sync >"$dir.initdb.log" 2>&1 ||
      { cat "$dir.initdb.log" >&2; exit 1; }
  fi
  as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 30 start -o \
    "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=400" \
    >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  echo "postgres://keyward@127.0.0.1:$port/postgres"
}

stop() {
  local dir="$1" bin
  bin=$(bindir) || exit 0
  [ -f "$dir/postmaster.pid" ] || exit 0
  # A stop that fails is reported (callers that only clean up decide to ignore it).
  as_owner "$bin/pg_ctl" -D "$dir" -m immediate -w stop >/dev/null
}

case "${1:-}" in
  install) install ;;
  start) start "$2" "$3" ;;
  stop) stop "$2" ;;
  *) echo "usage: scripts/postgres.sh install | start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
