#!/usr/bin/env bash
# HTTP load benchmark: starts the release server on loopback with a fresh SQLite database,
# issues a key, and loads POST /v1/verify, GET /v1/authorize (valid key) and GET /healthz
# with wrk in one run. Prints requests/s and p50/p99 for each, and verify/healthz.
# The three endpoints are loaded in turn for ROUNDS rounds (default 3) and each figure is
# the median over the rounds, so a slow moment of the machine does not skew one endpoint.
#
#   scripts/bench-http.sh [DURATION_SECONDS=10] [CONNECTIONS=64]    (ROUNDS=3 by default)
#
# Installs wrk (Debian) when missing. Traffic goes to 127.0.0.1 only and stops by itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

duration="${1:-10}"
connections="${2:-64}"
threads="${WRK_THREADS:-2}"
rounds="${ROUNDS:-3}"
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

run() { # slug round path [script]
  local slug="$1" round="$2" path="$3" script="${4:-}"
  local args=(-t"$threads" -c"$connections" -d"${duration}s" --latency)
  [ -n "$script" ] && args+=(-s "$script")
  wrk "${args[@]}" "$base$path" >"$work/$slug.$round.txt"
}

echo "wrk: $threads threads, $connections connections, ${duration}s per run, $rounds rounds, against $base ($(nproc) cores)"
for round in $(seq 1 "$rounds"); do
  run healthz "$round" /healthz
  run verify "$round" /v1/verify "$work/verify.lua"
  run authorize "$round" /v1/authorize "$work/authorize.lua"
done
python3 - "$work" "$rounds" <<'PY'
import re, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])

def seconds(text):
    value, unit = re.fullmatch(r"([0-9.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]

def figures(slug):
    rps, p50, p99, errors = [], [], [], 0
    for round in range(1, rounds + 1):
        text = open(f"{work}/{slug}.{round}.txt").read()
        rps.append(float(re.search(r"Requests/sec:\s+([0-9.]+)", text).group(1)))
        p50.append(seconds(re.search(r"\n\s+50%\s+(\S+)", text).group(1)))
        p99.append(seconds(re.search(r"\n\s+99%\s+(\S+)", text).group(1)))
        match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
        errors += int(match.group(1)) if match else 0
    return statistics.median(rps), statistics.median(p50), statistics.median(p99), errors, rps

rows = {slug: figures(slug) for slug in ("healthz", "verify", "authorize")}
labels = {"healthz": "GET /healthz", "verify": "POST /v1/verify", "authorize": "GET /v1/authorize"}
for slug, (rps, p50, p99, errors, each) in rows.items():
    runs = " ".join(f"{r:.0f}" for r in each)
    print(f"{labels[slug]:<20} {rps:>10.0f} req/s   p50 {p50 * 1e3:.2f} ms   p99 {p99 * 1e3:.2f} ms   non-2xx {errors}   (runs: {runs})")
health = rows["healthz"][0]
print(f"ratio verify/healthz     {rows['verify'][0] / health:.2f}")
print(f"ratio authorize/healthz  {rows['authorize'][0] / health:.2f}")
PY
