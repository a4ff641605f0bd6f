"""A webhook receiver for the tests: verifies every delivery with the `standardwebhooks`
package (the reference implementation of the Standard Webhooks specification) and logs it.

    python webhook_receiver.py SECRETS_FILE LOG_FILE [--fail-first N] [--gone]

Prints the port it listens on (loopback), then serves until killed. SECRETS_FILE holds the
secrets to verify with, one per line (read on every request, so a test can write it after
registering the endpoint); a delivery verifies when any of them verifies it. Each request
appends one JSON line to LOG_FILE: its webhook-id, whether and with which secret it
verified, and its body. With --fail-first N the first N requests for each webhook-id are
answered 500; with --gone every request is answered 410.
"""

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

parser = argparse.ArgumentParser()
parser.add_argument("secrets")
parser.add_argument("log")
parser.add_argument("--fail-first", type=int, default=0)
parser.add_argument("--gone", action="store_true")
args = parser.parse_args()

lock = threading.Lock()
seen: dict[str, int] = {}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        with open(args.secrets) as f:
            secrets = [line.strip() for line in f if line.strip()]
        verified_with = None
        for index, secret in enumerate(secrets):
            try:
                Webhook(secret).verify(body, headers)
                verified_with = index
                break
            except WebhookVerificationError:
                continue
        webhook_id = headers.get("webhook-id", "")
        with lock:
            seen[webhook_id] = seen.get(webhook_id, 0) + 1
            attempt = seen[webhook_id]
            if args.gone:
                status = 410
            elif attempt <= args.fail_first:
                status = 500
            else:
                status = 204 if verified_with is not None else 400
            with open(args.log, "a") as log:
                log.write(json.dumps({
                    "id": webhook_id,
                    "verified": verified_with is not None,
                    "secret": verified_with,
                    "status": status,
                    "signatures": headers.get("webhook-signature", "").count("v1,"),
                    "body": json.loads(body) if body else None,
                }) + "\n")
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
