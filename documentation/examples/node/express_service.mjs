// An API protected by keyward, in Node with Express: a middleware calls /v1/verify.
//
// Each request's key is checked once (a check consumes the key's rate limits, exactly like
// a request through a gateway); a refusal answers the status keyward's decision code stands
// for, as problem+json with the same `code`.
//
//   KEYWARD_URL   where keyward listens (default http://localhost:8080)
//   PORT          where this service listens (default 3000)
//
// Start keyward with `--trusted-proxy` covering this service's address: only then does
// keyward count failed checks against the end client's address (sent here as `ip`) rather
// than against this service's, so one client guessing keys cannot lock out all the others.
//
//   npm install && node express_service.mjs

import express from "express";

const keywardUrl = process.env.KEYWARD_URL ?? "http://localhost:8080";

// The HTTP status each refusal stands for (what /v1/authorize would answer). A code this
// table does not know (a newer keyward) is refused with 503: never admitted.
const STATUS = {
  MISSING: 401,
  INVALID: 401,
  REVOKED: 401,
  DISABLED: 401,
  EXPIRED: 401,
  IP_NOT_ALLOWED: 403,
  INSUFFICIENT_SCOPE: 403,
  TOO_MANY_FAILURES: 429,
  QUOTA_EXCEEDED: 429,
  RATE_LIMITED: 429,
};

function presentedKey(req) {
  const [scheme, token] = (req.get("authorization") ?? "").split(" ", 2);
  if (scheme?.toLowerCase() === "bearer") return (token ?? "").trim();
  return req.get("x-api-key") ?? "";
}

// A middleware that admits a request only with a valid key holding `scopes`; the decision
// (user_id, plan, scopes, metadata) is left in `req.keyward`.
export function requireKey(...scopes) {
  return async (req, res, next) => {
    let decision;
    try {
      const answer = await fetch(`${keywardUrl}/v1/verify`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          key: presentedKey(req),
          required_scopes: scopes,
          ip: req.ip,
          method: req.method,
          endpoint: req.path,
        }),
        signal: AbortSignal.timeout(5000),
      });
      if (!answer.ok) throw new Error(`keyward answered ${answer.status}`);
      decision = await answer.json();
    } catch {
      // Fail closed: without an answer, no request gets through.
      return res.status(503).type("application/problem+json").json({ status: 503, code: "UNAVAILABLE" });
    }
    if (decision.ratelimit) {
      // The tightest window, as the X-RateLimit-* headers a gateway would add.
      res.set({
        "X-RateLimit-Limit": String(decision.ratelimit.limit),
        "X-RateLimit-Remaining": String(decision.ratelimit.remaining),
        "X-RateLimit-Reset": String(decision.ratelimit.reset_seconds),
      });
    }
    if (decision.valid) {
      req.keyward = decision;
      return next();
    }
    const status = STATUS[decision.code] ?? 503;
    if (status === 401) res.set("WWW-Authenticate", "Bearer");
    if (decision.code === "RATE_LIMITED" && decision.ratelimit) {
      // When the tightest window next frees units (at least 1 s). /v1/verify does not say
      // how long a burst bucket, a quota or a lockout lasts; /v1/authorize answers those
      // with an exact Retry-After.
      res.set("Retry-After", String(Math.max(1, decision.ratelimit.reset_seconds)));
    }
    res.status(status).type("application/problem+json").json({ status, code: decision.code });
  };
}

const app = express();
app.get("/orders", requireKey("orders:read"), (req, res) => {
  res.json({ user_id: req.keyward.user_id, orders: [] });
});

const port = Number(process.env.PORT ?? 3000);
app.listen(port, "127.0.0.1", () => console.log(`listening on http://127.0.0.1:${port}`));
