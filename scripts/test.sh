#!/usr/bin/env bash
# keyward's one test command (the README's and CI's): formatting, lints, every test.
#
# Works from a fresh clone on a fresh machine: it needs the Rust toolchain (cargo, rustfmt,
# clippy) and Python 3. What else the tests need (Redis, PostgreSQL, nginx, Caddy, Chromium,
# jq and Node.js from Debian; packages from PyPI and npm) is installed when missing, servers
# are started here and stopped on exit even on failure; one that cannot be had fails the
# run, never a skip.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Reuse one build directory outside the clone, so CI on this machine starts warm.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/keyward/target}"
# A test run gains nothing from incremental compilation, whose caches grow by gigabytes a
# build on a shared target directory.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# One test thread per core: each test starts servers of its own, and more threads than
# cores turn timing margins into flakes.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-$(nproc 2>/dev/null || echo 2)}"

step() { printf '\n==> %s\n' "$*"; }
fail() { echo "scripts/test.sh: $*" >&2; exit 1; }

cache="${XDG_CACHE_HOME:-$HOME/.cache}/keyward"
mkdir -p "$cache"
workdir=$(mktemp -d)
server_pid=""
redis_pid=""
cluster_pids=()
pg_dir=""
cleanup() {
  if [ -n "$pg_dir" ]; then scripts/postgres.sh stop "$pg_dir" || true; rm -rf "$pg_dir" "$pg_dir.initdb.log"; fi
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  for pid in "${cluster_pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
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

# A throwaway Redis Cluster of three masters (no replicas) on free loopback ports, for the
# limiter's conformance suite over a cluster: KEYWARD_TEST_REDIS_CLUSTER_URL.
start_redis_cluster() {
  local ports=() port dir
  for _ in 1 2 3; do
    # A cluster node also listens on its port + 10000, so both must be free and <= 65535.
    port=$(python3 -c 'import random, socket
while True:
    port = random.randint(20000, 55000)
    try:
        for p in (port, port + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", p)); s.close()
    except OSError:
        continue
    print(port); break')
    dir="$workdir/redis-cluster-$port"
    mkdir -p "$dir"
    (cd "$dir" && redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
      >"$dir/redis.log" 2>&1) &
    cluster_pids+=("$!")
    ports+=("$port")
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 1 100); do
      redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
      sleep 0.1
    done
  done
  redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes \
    >"$workdir/redis-cluster-create.log" 2>&1 ||
    { cat "$workdir/redis-cluster-create.log" >&2; fail "cannot create the Redis Cluster"; }
  for _ in $(seq 1 100); do
    if redis-cli -p "${ports[0]}" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then
      export KEYWARD_TEST_REDIS_CLUSTER_URL="redis+cluster://127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
      echo "Redis Cluster on $KEYWARD_TEST_REDIS_CLUSTER_URL"
      return
    fi
    sleep 0.1
  done
  fail "the Redis Cluster did not become ready"
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
# Debian's Chromium and its driver: the API reference at /docs, the dashboard and the portal
# are tested in a real browser.
ensure_browser() {
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 ||
      fail "chromium and chromium-driver are needed by the browser tests and could not be installed"
  fi
}
trap cleanup EXIT

SCHEMATHESIS_VERSION="4.32.5"
SPEC_VALIDATOR_VERSION="0.9.0"
HTTPX_VERSION="0.28.1"
# The examples' own pins (documentation/examples/python/requirements.txt).
FASTAPI_VERSION="0.165.0"
UVICORN_VERSION="0.54.0"
# The reference Standard Webhooks verifier, for the event webhook tests.
STANDARDWEBHOOKS_VERSION="1.1.0"
# Drives Chromium through chromium-driver in the dashboard and portal tests.
SELENIUM_VERSION="4.51.0"

# The Python tools the tests use, from PyPI, in a virtualenv of their own, installed once
# per machine: schemathesis and openapi-spec-validator (the OpenAPI document), httpx with
# HTTP/2 (a real client of keyward's HTTPS), FastAPI and uvicorn (the documentation's
# examples), standardwebhooks (verifies every webhook delivery in the tests), selenium (the
# dashboard and portal in Chromium). The tests find Python in KEYWARD_TEST_PYTHON.
ensure_python_tools() {
  local venv="$cache/venv"
  if ! command -v curl >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq curl) >/dev/null 2>&1 ||
      fail "curl is needed by the HTTPS tests and could not be installed"
  fi
  export KEYWARD_TEST_PYTHON="$venv/bin/python"
  if [ -x "$venv/bin/schemathesis" ] && "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION" &&
    "$venv/bin/pip" show openapi-spec-validator 2>/dev/null | grep -qx "Version: $SPEC_VALIDATOR_VERSION" &&
    "$venv/bin/pip" show httpx 2>/dev/null | grep -qx "Version: $HTTPX_VERSION" &&
    "$venv/bin/pip" show fastapi 2>/dev/null | grep -qx "Version: $FASTAPI_VERSION" &&
    "$venv/bin/pip" show uvicorn 2>/dev/null | grep -qx "Version: $UVICORN_VERSION" &&
    "$venv/bin/pip" show standardwebhooks 2>/dev/null | grep -qx "Version: $STANDARDWEBHOOKS_VERSION" &&
    "$venv/bin/pip" show selenium 2>/dev/null | grep -qx "Version: $SELENIUM_VERSION" &&
    "$venv/bin/python" -c "import h2" 2>/dev/null; then
    return
  fi
  if ! python3 -m venv --help >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq python3 python3-venv python3-pip) >/dev/null 2>&1 ||
      fail "python3 with venv is needed for schemathesis and could not be installed"
  fi
  rm -rf "$venv"
  python3 -m venv "$venv" || fail "cannot create a virtualenv for schemathesis"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" \
    "openapi-spec-validator==$SPEC_VALIDATOR_VERSION" "httpx[http2]==$HTTPX_VERSION" \
    "fastapi==$FASTAPI_VERSION" "uvicorn==$UVICORN_VERSION" \
    "standardwebhooks==$STANDARDWEBHOOKS_VERSION" "selenium==$SELENIUM_VERSION" ||
    fail "cannot install schemathesis, openapi-spec-validator, httpx, fastapi, uvicorn, standardwebhooks and selenium from PyPI"
}

# What the documentation's shell blocks and examples use besides keyward: jq and openssl
# (Debian), Node.js 18+ with npm (Debian's when the machine has none), and the Node
# examples' packages (npm ci, from their lock file).
ensure_doc_tools() {
  local missing=()
  command -v jq >/dev/null 2>&1 || missing+=(jq)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  if [ "${#missing[@]}" -gt 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null 2>&1 ||
      fail "${missing[*]} are needed by the documentation's examples and could not be installed"
  fi
  node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' ||
    fail "the Node examples need Node.js 18 or newer (found $(node --version))"
  (cd documentation/examples/node && npm ci --silent --no-audit --no-fund) ||
    fail "cannot install the Node examples' packages from the npm registry"
}

# Every `sh`/`console` block of README.md and documentation/, and every example, against a
# live keyward (scripts/doc-tests.py says how); then the shipped gateway configurations as
# the gateways themselves check them (the gateway tests also run them for real).
run_doc_tests() {
  PATH="$cache/venv/bin:$PATH" python3 scripts/doc-tests.py "$CARGO_TARGET_DIR/debug/keyward"
  local d="$workdir/nginx-check"
  mkdir -p "$d"
  printf 'pid %s/nginx.pid;\nerror_log %s/error.log;\nevents {}\nhttp {\n  include %s;\n}\n' \
    "$d" "$d" "$PWD/deploy/nginx/keyward.conf" >"$d/nginx.conf"
  nginx -t -q -p "$d" -e "$d/error.log" -c "$d/nginx.conf" || fail "nginx -t refuses deploy/nginx/keyward.conf"
  echo "nginx -t: deploy/nginx/keyward.conf is valid"
  HOME="$workdir" XDG_DATA_HOME="$workdir/caddy-data" XDG_CONFIG_HOME="$workdir/caddy-config" \
    caddy validate --adapter caddyfile --config deploy/caddy/Caddyfile >"$workdir/caddy-validate.log" 2>&1 ||
    { cat "$workdir/caddy-validate.log" >&2; fail "caddy validate refuses deploy/caddy/Caddyfile"; }
  echo "caddy validate: deploy/caddy/Caddyfile is valid"
}

# Starts the freshly built server on a free port with its own database; sets $base_url.
# The brute-force guard is off: schemathesis sends thousands of invalid keys from one
# address, which is exactly what the guard blocks (its own tests cover it).
start_server() {
  local token="$1" log="$workdir/server.log" out="$workdir/server.out"
  KEYWARD_ADMIN_TOKEN="$token" KEYWARD_DATABASE_URL="sqlite://$workdir/keyward.db" RUST_LOG=warn \
    "$CARGO_TARGET_DIR/debug/keyward" serve --listen 127.0.0.1:0 --failure-limit 0 >"$out" 2>"$log" &
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
  local token="schemathesis-admin-token-0123456789abcdef"
  start_server "$token"
  # The published document is valid OpenAPI 3.1, by a standard validator.
  python3 -c 'import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1]).read())' \
    "$base_url/openapi.json" >"$workdir/openapi.json" || fail "cannot fetch /openapi.json"
  "$cache/venv/bin/openapi-spec-validator" "$workdir/openapi.json" || fail "/openapi.json is not valid OpenAPI"
  # Every phase and every default check, with warnings and health checks on, except two
  # checks whose premise keyward contradicts on purpose:
  # - positive_data_acceptance: schema-valid values that break a rule no JSON Schema can
  #   state (an unknown plan, a cursor keyward did not issue, a network with host bits, a
  #   time outside 1970-9999, metadata over 16 KiB, a plan change dated outside the
  #   current month) are refused with 422 and a stable code, as they must be;
  # - use_after_free: a deleted user and a revoked key stay readable (their usage and
  #   invoices are kept; DELETE answers the object with `deleted_at`/`revoked_at` set).
  # Expected warnings: "Authentication failed" for /v1/authorize (every method it lists),
  # which takes a user's key while this run authenticates as the admin; and "Schema
  # validation mismatch" for operations whose inputs follow rules no JSON Schema states
  # (X-Keyward-Required-Scopes values that are not scopes, a plan or user that does not
  # exist), refused with 422 VALIDATION_FAILED; and "Missing test data" for
  # DELETE /v1/admin-keys/{id}, whose generated ids name no key (the stateful phase follows
  # the link from a created key only now and then), for POST /v1/keys/self-revoke (a
  # generated string is no key: 404) and for POST /v1/secret-scanning/github (off without
  # --github-public-keys: 404; its tests sign reports themselves).
  "$cache/venv/bin/schemathesis" run "$base_url/openapi.json" \
    --exclude-checks positive_data_acceptance,use_after_free \
    --header "Authorization: Bearer $token" \
    --max-examples 50 --seed 20261122
  # A server that panicked answered 503, which the checks above accept as an outage.
  if grep -q "panicked" "$workdir/server.log"; then
    cat "$workdir/server.log" >&2
    fail "the server panicked during the schemathesis run"
  fi
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

step "test services: Redis, a Redis Cluster, PostgreSQL, nginx, Caddy, Chromium; Python and Node tools"
start_redis
start_redis_cluster
start_postgres
ensure_gateways
ensure_browser
ensure_python_tools
ensure_doc_tools

step "cargo test"
cargo test --workspace --locked

step "openapi-spec-validator and schemathesis: the live server's /openapi.json"
run_schemathesis

step "the documentation: every shell block and example, against a live server"
run_doc_tests

step "the dashboard and the portal in Chromium (selenium; screenshots in $CARGO_TARGET_DIR/browser/screenshots)"
"$cache/venv/bin/python" crates/keyward/tests/browser/dashboard.py "$CARGO_TARGET_DIR/debug/keyward" "$CARGO_TARGET_DIR/browser" ||
  fail "the dashboard and portal browser tests failed (see $CARGO_TARGET_DIR/browser)"

step "all checks passed"
