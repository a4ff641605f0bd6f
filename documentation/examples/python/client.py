"""A client of an API protected by keyward, in Python with httpx.

Sends the key, prints the rate-limit headers, and on 429 waits as long as Retry-After says
before trying once more.

    API_URL   the protected endpoint (default: keyward's own /v1/authorize, which answers
              exactly what a gateway in front of your API would)
    API_KEY   the key to send (required)

    pip install httpx && API_KEY=sk_live_… python client.py
"""

import os
import sys
import time

import httpx

API_URL = os.environ.get("API_URL", "http://localhost:8080/v1/authorize")


def call(client: httpx.Client, key: str) -> httpx.Response:
    # The key goes in a header, never in the URL (URLs end up in access logs).
    return client.get(API_URL, headers={"Authorization": f"Bearer {key}"})


def main() -> int:
    key = os.environ.get("API_KEY")
    if not key:
        print("set API_KEY to an API key", file=sys.stderr)
        return 2
    with httpx.Client(timeout=10) as client:
        response = call(client, key)
        if response.status_code == 429:
            wait = int(response.headers.get("Retry-After", "1"))
            print(f"rate limited; retrying in {wait} s", file=sys.stderr)
            time.sleep(wait)
            response = call(client, key)

    print(f"HTTP {response.status_code}")
    for name in ("RateLimit-Policy", "RateLimit", "X-RateLimit-Remaining"):
        if name in response.headers:
            print(f"{name}: {response.headers[name]}")
    if response.is_success:
        print(response.text)
        return 0
    # Refusals are problem+json with a stable `code`: INVALID, REVOKED, RATE_LIMITED, …
    problem = response.json()
    print(f"refused: {problem['code']}: {problem.get('detail', '')}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
