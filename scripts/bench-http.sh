#!/usr/bin/env bash
# HTTP load benchmark: starts the release server on loopback with a fresh SQLite database,
# issues keys, and loads with wrk in one run: GET /healthz, POST /v1/verify and
# GET /v1/authorize with a valid key, GET /v1/authorize where 90 % of requests are
# rejected (an exhausted key), GET /v1/authorize on a second server whose limits live
# in Redis (a throwaway redis-server on loopback), and GET /v1/authorize on a third server
# on PostgreSQL + Redis (a throwaway cluster from scripts/postgres.sh) — the multi-node
# deployment's node, and GET /v1/authorize on a fourth server with usage tracking off
# (`--usage off`, same database), and GET /v1/authorize over HTTPS (keep-alive; a fifth
# server on the same database with a throwaway self-signed certificate), and — the floor —
# a bare axum handler on the same HTTP stack that reads the key header and answers 200
# (`crates/keyward-server/examples/bare_handler.rs`), and /v1/authorize with 1,000 keys in
# rotation. Prints requests/s, p50/p99 and the server's CPU time per request (from
# /proc/PID/stat; Redis's own CPU is added for the cases that use it) for each, every
# round's figure, and the ratios to the bare handler.
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
threads="${WRK_THREADS:-1}"
rounds="${ROUNDS:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/keyward/target}"

if ! command -v wrk >/dev/null 2>&1 || ! command -v redis-server >/dev/null 2>&1; then
  echo "installing wrk and redis-server…" >&2
  (apt-get update -qq && apt-get install -y -qq wrk redis-server) >/dev/null ||
    { echo "cannot install wrk and redis-server" >&2; exit 1; }
fi

cargo build --release --locked -q -p keyward
cargo build --release --locked -q -p keyward-server --example bare_handler
bin="$CARGO_TARGET_DIR/release/keyward"
bare_bin="$CARGO_TARGET_DIR/release/examples/bare_handler"
work=$(mktemp -d)
redis_pid=""
pg_dir=""
pids=()
cleanup() {
  for p in "${pids[@]}" "$redis_pid"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  wait 2>/dev/null || true
  if [ -n "$pg_dir" ]; then scripts/postgres.sh stop "$pg_dir"; rm -rf "$pg_dir" "$pg_dir.initdb.log"; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server NAME DATABASE_URL [serve options…]: starts a server, waits for its address
# and sets base_NAME (its pid goes to the list stopped on exit).
start_server() {
  local name="$1" url="$2"
  shift 2
  if [ "$name" = bare ]; then
    "$bare_bin" >"$work/$name.out" 2>"$work/$name.log" &
  else
    KEYWARD_DATABASE_URL="$url" "$bin" serve --listen 127.0.0.1:0 "$@" >"$work/$name.out" 2>"$work/$name.log" &
  fi
  pids+=("$!")
  printf -v "pid_$name" '%s' "$!"
  local address=""
  for _ in $(seq 1 100); do
    address=$(sed -n 's/^keyward listening on //p' "$work/$name.out")
    [ -n "$address" ] && break
    sleep 0.1
  done
  [ -n "$address" ] || { cat "$work/$name.log" >&2; echo "the $name server did not start" >&2; exit 1; }
  printf -v "base_$name" '%s' "$address"
}

new_key() { # database user plan
  KEYWARD_DATABASE_URL="$1" "$bin" --json keys create --user-id "$2" --name bench --tier "$3" 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'
}
# A plan whose limits the load never reaches, so every admitted request is admitted.
unmetered() {
  KEYWARD_DATABASE_URL="$1" "$bin" plans set unmetered \
    --per-minute 1000000000 --per-hour 1000000000 --per-day 1000000000 >/dev/null
}

export KEYWARD_ADMIN_TOKEN="bench-admin-token-0123456789abcdefghij"
start_server bare ""
sqlite="sqlite://$work/bench.db"
start_server main "$sqlite"
base="$base_main"
unmetered "$sqlite"
key=$(new_key "$sqlite" bench unmetered)
# 1,000 keys of 1,000 users on the unmetered plan, created through the API.
python3 - "$base" "$KEYWARD_ADMIN_TOKEN" >"$work/keys.txt" <<'PY'
import http.client, json, sys, urllib.parse
url = urllib.parse.urlparse(sys.argv[1])
conn = http.client.HTTPConnection(url.hostname, url.port)
headers = {"Authorization": f"Bearer {sys.argv[2]}", "Content-Type": "application/json"}
for i in range(1000):
    body = json.dumps({"user_id": f"rotating-{i}", "name": "bench", "tier": "unmetered"})
    conn.request("POST", "/v1/keys", body, headers)
    response = conn.getresponse()
    created = json.loads(response.read())
    if response.status != 201:
        sys.exit(f"cannot create a key: {response.status} {created}")
    print(created["key"])
PY
KEYWARD_DATABASE_URL="$sqlite" "$bin" plans set exhausted --per-day 1 >/dev/null
limited=$(new_key "$sqlite" limited exhausted)

# The same database served with usage tracking off, for the cost of usage tracking.
start_server usage_off "$sqlite" --usage off
base4="$base_usage_off"

# The same database served over HTTPS (a throwaway self-signed certificate; wrk does not
# verify it), for the cost of TLS.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj "/CN=localhost" -keyout "$work/tls-key.pem" -out "$work/tls-cert.pem" 2>/dev/null ||
  { echo "cannot make a certificate with openssl" >&2; exit 1; }
start_server tls "$sqlite" --tls-cert "$work/tls-cert.pem" --tls-key "$work/tls-key.pem"
base5="$base_tls"

# A second server on another database, its limits in a throwaway Redis.
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
redis_db="sqlite://$work/bench-redis.db"
start_server redis "$redis_db" --redis-url "redis://127.0.0.1:$redis_port"
base2="$base_redis"
unmetered "$redis_db"
redis_key=$(new_key "$redis_db" bench unmetered)

# A third server on PostgreSQL, its limits in the same Redis.
scripts/postgres.sh install
pg_dir=$(mktemp -d)
pg_url=$(scripts/postgres.sh start "$pg_dir" "$(free_port)")
start_server postgres "$pg_url" --redis-url "redis://127.0.0.1:$redis_port"
base3="$base_postgres"
unmetered "$pg_url"
pg_key=$(new_key "$pg_url" bench-pg unmetered)

cat >"$work/verify.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"key": "$key"}'
LUA
cat >"$work/authorize.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $key"
LUA
cat >"$work/authorize-redis.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $redis_key"
LUA
cat >"$work/authorize-pg.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $pg_key"
LUA
{
  echo "local keys = {"
  sed 's/.*/  "&",/' "$work/keys.txt"
  echo "}"
  cat <<'LUA'
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/v1/authorize", { ["Authorization"] = "Bearer " .. keys[n % #keys + 1] })
end
LUA
} >"$work/rotating.lua"
# One request in ten with the valid key, nine with the exhausted one (429).
cat >"$work/rejected.lua" <<LUA
local n = 0
request = function()
  n = n + 1
  local key = (n % 10 == 0) and "$key" or "$limited"
  return wrk.format("GET", "/v1/authorize", { ["Authorization"] = "Bearer " .. key })
end
LUA

# CPU time (clock ticks, user + system) a process has used so far.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

run() { # slug round pid url [script]: loads url, records wrk's report and the CPU ticks
  local slug="$1" round="$2" pid="$3" url="$4" script="${5:-}"
  local args=(-t"$threads" -c"$connections" -d"${duration}s" --latency)
  [ -n "$script" ] && args+=(-s "$script")
  local before redis_before=0
  before=$(ticks "$pid")
  case "$slug" in redis | postgres) redis_before=$(ticks "$redis_pid") ;; esac
  wrk "${args[@]}" "$url" >"$work/$slug.$round.txt"
  local used=$(($(ticks "$pid") - before))
  case "$slug" in redis | postgres) used=$((used + $(ticks "$redis_pid") - redis_before)) ;; esac
  echo "$used" >"$work/$slug.$round.cpu"
}

echo "wrk: $threads threads, $connections connections, ${duration}s per run, $rounds rounds, against $base ($(nproc) cores)"
for round in $(seq 1 "$rounds"); do
  run bare "$round" "$pid_bare" "$base_bare/v1/authorize" "$work/authorize.lua"
  run healthz "$round" "$pid_main" "$base/healthz"
  run verify "$round" "$pid_main" "$base/v1/verify" "$work/verify.lua"
  run authorize "$round" "$pid_main" "$base/v1/authorize" "$work/authorize.lua"
  run rotating "$round" "$pid_main" "$base/v1/authorize" "$work/rotating.lua"
  run rejected "$round" "$pid_main" "$base/v1/authorize" "$work/rejected.lua"
  run redis "$round" "$pid_redis" "$base2/v1/authorize" "$work/authorize-redis.lua"
  run postgres "$round" "$pid_postgres" "$base3/v1/authorize" "$work/authorize-pg.lua"
  run usage_off "$round" "$pid_usage_off" "$base4/v1/authorize" "$work/authorize.lua"
  run https "$round" "$pid_tls" "$base5/v1/authorize" "$work/authorize.lua"
done
# Where the Redis case's time goes: Redis's own CPU per script run.
redis-cli -p "$redis_port" info commandstats | grep -E '^cmdstat_evalsha:' | tr -d '\r' |
  sed 's/^/redis /'
python3 - "$work" "$rounds" "$(getconf CLK_TCK)" <<'PY'
import re, statistics, sys
work, rounds, clk_tck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def seconds(text):
    value, unit = re.fullmatch(r"([0-9.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]

def figures(slug):
    rps, p50, p99, cpu, errors = [], [], [], [], 0
    for round in range(1, rounds + 1):
        text = open(f"{work}/{slug}.{round}.txt").read()
        rps.append(float(re.search(r"Requests/sec:\s+([0-9.]+)", text).group(1)))
        requests = int(re.search(r"(\d+) requests in", text).group(1))
        ticks = int(open(f"{work}/{slug}.{round}.cpu").read())
        cpu.append(ticks / clk_tck * 1e6 / max(requests, 1))
        p50.append(seconds(re.search(r"\n\s+50%\s+(\S+)", text).group(1)))
        p99.append(seconds(re.search(r"\n\s+99%\s+(\S+)", text).group(1)))
        match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
        errors += int(match.group(1)) if match else 0
    return statistics.median(rps), statistics.median(p50), statistics.median(p99), errors, rps, statistics.median(cpu)

rows = {slug: figures(slug) for slug in ("bare", "healthz", "verify", "authorize", "rotating", "rejected", "redis", "postgres", "usage_off", "https")}
labels = {
    "bare": "bare axum handler",
    "healthz": "GET /healthz",
    "verify": "POST /v1/verify",
    "authorize": "GET /v1/authorize",
    "rotating": "authorize, 1,000 keys",
    "rejected": "authorize, 90% 429",
    "redis": "authorize via Redis",
    "postgres": "authorize, PG + Redis",
    "usage_off": "authorize, usage off",
    "https": "authorize over HTTPS",
}
for slug, (rps, p50, p99, errors, each, cpu) in rows.items():
    runs = " ".join(f"{r:.0f}" for r in each)
    print(f"{labels[slug]:<22} {rps:>10.0f} req/s   p50 {p50 * 1e3:.2f} ms   p99 {p99 * 1e3:.2f} ms   CPU {cpu:5.1f} µs/req   non-2xx {errors}   (runs: {runs})")
bare_rps, bare_cpu = rows["bare"][0], rows["bare"][5]
for slug in ("healthz", "verify", "authorize", "rotating", "redis"):
    print(f"ratio {labels[slug]} / bare handler: req/s {rows[slug][0] / bare_rps:.2f}, CPU per request {rows[slug][5] / bare_cpu:.2f}")
health = rows["healthz"][0]
print(f"ratio verify/healthz     {rows['verify'][0] / health:.2f}")
print(f"ratio authorize/healthz  {rows['authorize'][0] / health:.2f}")
print(f"ratio 90%-rejected/admitted authorize  {rows['rejected'][0] / rows['authorize'][0]:.2f}")
print(f"ratio Redis/in-process authorize       {rows['redis'][0] / rows['authorize'][0]:.2f}")
print(f"ratio PG+Redis node / SQLite+in-process node, authorize  {rows['postgres'][0] / rows['authorize'][0]:.2f}")
print(f"ratio usage on / usage off, authorize    {rows['authorize'][0] / rows['usage_off'][0]:.2f}")
print(f"ratio HTTPS / plain HTTP, authorize      {rows['https'][0] / rows['authorize'][0]:.2f}")
PY
