#!/bin/sh
# A client of an API protected by keyward, with curl: send the key, read the rate-limit
# headers, and on 429 wait as long as Retry-After says before trying once more.
#
#   API_URL   the protected endpoint (default: keyward's own /v1/authorize, which answers
#             exactly what a gateway in front of your API would)
#   API_KEY   the key to send (required)
set -eu

: "${API_KEY:?set API_KEY to an API key}"
API_URL="${API_URL:-http://localhost:8080/v1/authorize}"
headers=$(mktemp)
body=$(mktemp)
trap 'rm -f "$headers" "$body"' EXIT

call() {
  # The key goes in a header, never in the URL (URLs end up in access logs).
  curl -sS -o "$body" -D "$headers" -w '%{http_code}' \
    -H "Authorization: Bearer $API_KEY" "$API_URL"
}

status=$(call)
if [ "$status" = 429 ]; then
  wait=$(sed -n 's/^retry-after: *\([0-9]*\).*/\1/ip' "$headers")
  echo "rate limited; retrying in ${wait:-1} s" >&2
  sleep "${wait:-1}"
  status=$(call)
fi

echo "HTTP $status"
grep -i '^ratelimit' "$headers" || true
cat "$body"
echo
case "$status" in
  2??) exit 0 ;;
  *) exit 1 ;;  # 401 (bad key), 403 (scope, address, HTTPS), 429: see the problem's `code`
esac
