#!/bin/sh
# Runs every example against a running keyward, and fails when one misbehaves:
#
#   1. each client (curl, Python, Node) against keyward's /v1/authorize;
#   2. the FastAPI and the Express services, each called by every client, and each asked to
#      refuse a missing key (401), a key without the scope (403) and a revoked key (401).
#
#   KEYWARD_URL          where keyward listens (default http://localhost:8080)
#   KEYWARD_ADMIN_TOKEN  its admin token, to create the keys the examples use
#
# Needs curl, jq, Python 3 with python/requirements.txt installed, and Node 18+ with
# `npm install` run in node/. keyward should run with `--trusted-proxy 127.0.0.1/32`, as
# the services on this machine forward their clients' addresses.
set -eu
cd "$(dirname "$0")"

KEYWARD_URL="${KEYWARD_URL:-http://localhost:8080}"
: "${KEYWARD_ADMIN_TOKEN:?set KEYWARD_ADMIN_TOKEN}"
export KEYWARD_URL
pids=""
tmp=$(mktemp -d)
trap 'for pid in $pids; do kill "$pid" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT

fail() { echo "examples: $*" >&2; exit 1; }

new_key() { # user_id, scope → prints a new key
  curl -sSf -X POST "$KEYWARD_URL/v1/keys" -H "Authorization: Bearer $KEYWARD_ADMIN_TOKEN" \
    -H 'Content-Type: application/json' \
    -d "{\"user_id\": \"$1\", \"name\": \"examples\", \"scopes\": [\"$2\"]}" | jq -r .key
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # url
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.1
  done
  fail "nothing listens on $1"
}

expect_status() { # expected, description, curl args…
  expected=$1 what=$2
  shift 2
  got=$(curl -s -o /dev/null -w '%{http_code}' "$@")
  [ "$got" = "$expected" ] || fail "$what: expected HTTP $expected, got $got"
  echo "ok: $what → $got"
}

run_clients() { # url
  API_URL="$1" sh curl/client.sh
  API_URL="$1" python3 python/client.py
  API_URL="$1" node node/client.mjs
}

API_KEY=$(new_key example-user orders:read)
export API_KEY
other=$(new_key example-user other:scope)
revoked=$(new_key example-user orders:read)
revoked_id=$(curl -sSf -X POST "$KEYWARD_URL/v1/verify" -H 'Content-Type: application/json' \
  -d "{\"key\": \"$revoked\"}" | jq -r .key_id)
curl -sSf -o /dev/null -X DELETE "$KEYWARD_URL/v1/keys/$revoked_id" \
  -H "Authorization: Bearer $KEYWARD_ADMIN_TOKEN"

echo "--- clients → keyward's /v1/authorize"
run_clients "$KEYWARD_URL/v1/authorize"
# A revoked key: each client exits 1 and says why (the problem's code).
refused() { # description, command…
  what=$1
  shift
  status=0
  API_KEY=$revoked API_URL="$KEYWARD_URL/v1/authorize" "$@" >"$tmp/out" 2>&1 || status=$?
  [ "$status" = 1 ] || fail "$what exited $status on a revoked key: $(cat "$tmp/out")"
  grep -q REVOKED "$tmp/out" || fail "$what did not say REVOKED: $(cat "$tmp/out")"
  echo "ok: $what refuses a revoked key"
}
refused "the curl client" sh curl/client.sh
refused "the Python client" python3 python/client.py
refused "the Node client" node node/client.mjs

check_service() { # name, base url
  echo "--- clients → the $1 service"
  run_clients "$2/orders"
  expect_status 401 "$1 without a key" "$2/orders"
  expect_status 403 "$1 with a key lacking orders:read" -H "Authorization: Bearer $other" "$2/orders"
  expect_status 401 "$1 with a revoked key" -H "X-API-Key: $revoked" "$2/orders"
  curl -s -D - -o /dev/null "$2/orders" | grep -qi '^www-authenticate: Bearer' ||
    fail "$1 does not challenge with WWW-Authenticate"
  curl -s -H "Authorization: Bearer $API_KEY" "$2/orders" | jq -e '.user_id == "example-user"' >/dev/null ||
    fail "$1 does not see the key's user"
  curl -s -D - -o /dev/null -H "Authorization: Bearer $API_KEY" "$2/orders" | grep -qi '^x-ratelimit-remaining: [0-9]' ||
    fail "$1 does not pass the rate-limit headers on"
}

port=$(free_port)
python3 -m uvicorn --app-dir python fastapi_service:app --host 127.0.0.1 --port "$port" --log-level warning &
pids="$pids $!"
wait_for "http://127.0.0.1:$port/orders"
check_service FastAPI "http://127.0.0.1:$port"

port=$(free_port)
PORT=$port node node/express_service.mjs &
pids="$pids $!"
wait_for "http://127.0.0.1:$port/orders"
check_service Express "http://127.0.0.1:$port"

# Without keyward (nothing listens at KEYWARD_URL), each service fails closed: 503.
closed=$(free_port)
port=$(free_port)
KEYWARD_URL="http://127.0.0.1:$closed" python3 -m uvicorn --app-dir python fastapi_service:app \
  --host 127.0.0.1 --port "$port" --log-level critical &
pids="$pids $!"
wait_for "http://127.0.0.1:$port/orders"
expect_status 503 "FastAPI without keyward" -H "Authorization: Bearer $API_KEY" "http://127.0.0.1:$port/orders"
port=$(free_port)
KEYWARD_URL="http://127.0.0.1:$closed" PORT=$port node node/express_service.mjs >/dev/null &
pids="$pids $!"
wait_for "http://127.0.0.1:$port/orders"
expect_status 503 "Express without keyward" -H "Authorization: Bearer $API_KEY" "http://127.0.0.1:$port/orders"

echo "all examples passed"
