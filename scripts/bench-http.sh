#!/usr/bin/env bash
# HTTP load benchmark: starts the release server on loopback with a fresh SQLite database,
# issues a key, and loads POST /v1/verify, GET /v1/authorize (valid key) and GET /healthz
# with wrk in one run. Prints requests/s and p50/p99 for each, and verify/healthz.
#
#   scripts/bench-http.sh [DURATION_SECONDS=10] [CONNECTIONS=64]
#
# Installs wrk (Debian) when missing. Traffic goes to 127.0.0.1 only and stops by itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

duration="${1:-10}"
connections="${2:-64}"
threads="${WRK_THREADS:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/keyward/target}"

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk…" >&2
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null || { echo "cannot install wrk" >&2; exit 1; }
fi

cargo build --release --locked -q -p keyward
bin="$CARGO_TARGET_DIR/release/keyward"
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

export KEYWARD_DATABASE_URL="sqlite://$work/bench.db"
export KEYWARD_ADMIN_TOKEN="bench-admin-token-0123456789abcdefghij"
"$bin" serve --listen 127.0.0.1:0 >"$work/out" 2>"$work/log" &
pid=$!
for _ in $(seq 1 100); do
  base=$(sed -n 's/^keyward listening on //p' "$work/out")
  [ -n "$base" ] && break
  sleep 0.1
done
[ -n "${base:-}" ] || { cat "$work/log" >&2; echo "the server did not start" >&2; exit 1; }

key=$("$bin" --json keys create --user-id bench --name bench --tier enterprise 2>/dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')

cat >"$work/verify.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"key": "$key"}'
LUA
cat >"$work/authorize.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $key"
LUA

run() { # slug label path [script]
  local slug="$1" label="$2" path="$3" script="${4:-}"
  local args=(-t"$threads" -c"$connections" -d"${duration}s" --latency)
  [ -n "$script" ] && args+=(-s "$script")
  wrk "${args[@]}" "$base$path" >"$work/$slug.txt"
  local rps p50 p99 errors
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$work/$slug.txt")
  p50=$(awk '$1 == "50%" {print $2}' "$work/$slug.txt")
  p99=$(awk '$1 == "99%" {print $2}' "$work/$slug.txt")
  errors=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$work/$slug.txt")
  printf '%-20s %12s req/s   p50 %-9s p99 %-9s non-2xx %s\n' "$label" "$rps" "$p50" "$p99" "${errors:-0}"
  echo "$rps" >"$work/$slug.rps"
}

echo "wrk: $threads threads, $connections connections, ${duration}s each, against $base ($(nproc) cores)"
run healthz "GET /healthz" /healthz
run verify "POST /v1/verify" /v1/verify "$work/verify.lua"
run authorize "GET /v1/authorize" /v1/authorize "$work/authorize.lua"
python3 - "$work" <<'PY'
import sys
work = sys.argv[1]
read = lambda slug: float(open(f"{work}/{slug}.rps").read())
health = read("healthz")
print(f"ratio verify/healthz     {read('verify') / health:.2f}")
print(f"ratio authorize/healthz  {read('authorize') / health:.2f}")
PY
