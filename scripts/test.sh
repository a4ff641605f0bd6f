#!/usr/bin/env bash
# keyward's one test command (the README's and CI's): formatting, lints, every test.
#
# Works from a fresh clone on a fresh machine: it needs the Rust toolchain (cargo, rustfmt,
# clippy) and Python 3. Services the tests need (Redis, PostgreSQL, nginx, Caddy) are
# installed when missing and started here, and stopped on exit even on failure; one that
# cannot be had fails the run, never a skip.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Reuse one build directory outside the clone, so CI on this machine starts warm.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/keyward/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Two cores: keep test binaries from starving each other.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}"

step() { printf '\n==> %s\n' "$*"; }
fail() { echo "scripts/test.sh: $*" >&2; exit 1; }

cache="${XDG_CACHE_HOME:-$HOME/.cache}/keyward"
mkdir -p "$cache"
workdir=$(mktemp -d)
server_pid=""
redis_pid=""
pg_dir=""
cleanup() {
  if [ -n "$pg_dir" ]; then scripts/postgres.sh stop "$pg_dir" || true; rm -rf "$pg_dir" "$pg_dir.initdb.log"; fi
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  rm -rf "$workdir"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# A throwaway Redis without persistence on a free loopback port, for the limiter tests.
# Installed from Debian when missing; a Redis that cannot be had fails the run.
start_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq redis-server) >/dev/null 2>&1 ||
      fail "redis-server is needed by the tests and could not be installed"
  fi
  local port
  port=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    >"$workdir/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 1 100); do
    if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
      export KEYWARD_TEST_REDIS_URL="redis://127.0.0.1:$port"
      echo "Redis on $KEYWARD_TEST_REDIS_URL"
      return
    fi
    sleep 0.1
  done
  cat "$workdir/redis.log" >&2
  fail "Redis did not start"
}

# A throwaway PostgreSQL cluster (initdb in a temp dir, trust auth, a free loopback port);
# the tests create a database each on it.
start_postgres() {
  scripts/postgres.sh install
  pg_dir=$(mktemp -d)
  local port
  port=$(free_port)
  KEYWARD_TEST_DATABASE_URL=$(scripts/postgres.sh start "$pg_dir" "$port") ||
    fail "PostgreSQL did not start"
  export KEYWARD_TEST_DATABASE_URL
  echo "PostgreSQL on $KEYWARD_TEST_DATABASE_URL"
}

# The gateways whose shipped configurations (deploy/) the tests run for real.
ensure_gateways() {
  if ! command -v nginx >/dev/null 2>&1 || ! command -v caddy >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx caddy) >/dev/null 2>&1 ||
      fail "nginx and caddy are needed by the gateway tests and could not be installed"
  fi
}
trap cleanup EXIT

SCHEMATHESIS_VERSION="4.32.5"

# schemathesis (PyPI) in a virtualenv of its own, installed once per machine.
ensure_schemathesis() {
  local venv="$cache/venv"
  if [ -x "$venv/bin/schemathesis" ] && "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    return
  fi
  if ! python3 -m venv --help >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq python3 python3-venv python3-pip) >/dev/null 2>&1 ||
      fail "python3 with venv is needed for schemathesis and could not be installed"
  fi
  rm -rf "$venv"
  python3 -m venv "$venv" || fail "cannot create a virtualenv for schemathesis"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" ||
    fail "cannot install schemathesis $SCHEMATHESIS_VERSION from PyPI"
}

# Starts the freshly built server on a free port with its own database; sets $base_url.
start_server() {
  local token="$1" log="$workdir/server.log" out="$workdir/server.out"
  KEYWARD_ADMIN_TOKEN="$token" KEYWARD_DATABASE_URL="sqlite://$workdir/keyward.db" RUST_LOG=warn \
    "$CARGO_TARGET_DIR/debug/keyward" serve --listen 127.0.0.1:0 >"$out" 2>"$log" &
  server_pid=$!
  for _ in $(seq 1 100); do
    base_url=$(sed -n 's/^keyward listening on //p' "$out")
    [ -n "$base_url" ] && return
    kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; fail "the server did not start"; }
    sleep 0.1
  done
  fail "the server did not report its address within 10 s"
}

run_schemathesis() {
  ensure_schemathesis
  local token="schemathesis-admin-token-0123456789abcdef"
  start_server "$token"
  "$cache/venv/bin/schemathesis" run "$base_url/openapi.json" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --header "Authorization: Bearer $token" \
    --phases coverage,fuzzing,stateful --max-examples 50 --seed 20261122 \
    --suppress-health-check all --warnings off
}

for tool in cargo rustfmt cargo-clippy; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "scripts/test.sh: '$tool' is missing; install the Rust toolchain with rustfmt and clippy" >&2
    exit 1
  fi
done

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "test services: Redis, PostgreSQL, nginx and Caddy"
start_redis
start_postgres
ensure_gateways

step "cargo test"
cargo test --workspace --locked

step "schemathesis: every operation of the live server's /openapi.json"
run_schemathesis

step "all checks passed"
