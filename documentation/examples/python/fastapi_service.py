"""An API protected by keyward, in Python with FastAPI: a dependency calls /v1/verify.

Each request's key is checked once (a check consumes the key's rate limits, exactly like a
request through a gateway); a refusal answers the status keyward's decision code stands
for, as problem+json with the same `code`.

    KEYWARD_URL   where keyward listens (default http://localhost:8080)

Start keyward with `--trusted-proxy` covering this service's address: only then does
keyward count failed checks against the end client's address (sent here as `ip`) rather
than against this service's, so one client guessing keys cannot lock out all the others.

    pip install fastapi uvicorn httpx
    uvicorn fastapi_service:app --port 8000
"""

import os
from contextlib import asynccontextmanager

import httpx
from fastapi import Depends, FastAPI, HTTPException, Request

KEYWARD_URL = os.environ.get("KEYWARD_URL", "http://localhost:8080")

# The HTTP status each refusal stands for (what /v1/authorize would answer). A code this
# table does not know (a newer keyward) is refused with 503: never admitted.
STATUS = {
    "MISSING": 401,
    "INVALID": 401,
    "REVOKED": 401,
    "DISABLED": 401,
    "EXPIRED": 401,
    "IP_NOT_ALLOWED": 403,
    "INSUFFICIENT_SCOPE": 403,
    "TOO_MANY_FAILURES": 429,
    "QUOTA_EXCEEDED": 429,
    "RATE_LIMITED": 429,
}


@asynccontextmanager
async def lifespan(app: FastAPI):
    # One connection pool for every check.
    async with httpx.AsyncClient(base_url=KEYWARD_URL, timeout=5) as client:
        app.state.keyward = client
        yield


app = FastAPI(lifespan=lifespan)


def presented_key(request: Request) -> str:
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return token.strip()
    return request.headers.get("x-api-key", "")


def ratelimit_headers(ratelimit: dict) -> dict:
    """The tightest window, as the X-RateLimit-* headers a gateway would add."""
    return {
        "X-RateLimit-Limit": str(ratelimit["limit"]),
        "X-RateLimit-Remaining": str(ratelimit["remaining"]),
        "X-RateLimit-Reset": str(ratelimit["reset_seconds"]),
    }


def require_key(*scopes: str):
    """A dependency that admits a request only with a valid key holding `scopes`."""

    async def check(request: Request) -> dict:
        body = {
            "key": presented_key(request),
            "required_scopes": list(scopes),
            "ip": request.client.host if request.client else None,
            "method": request.method,
            "endpoint": request.url.path,
        }
        try:
            answer = await request.app.state.keyward.post("/v1/verify", json=body)
            answer.raise_for_status()
        except httpx.HTTPError:
            # Fail closed: without an answer, no request gets through.
            raise HTTPException(503, detail="UNAVAILABLE")
        decision = answer.json()
        ratelimit = decision.get("ratelimit")
        if decision["valid"]:
            if ratelimit:
                request.state.ratelimit = ratelimit_headers(ratelimit)
            return decision
        status = STATUS.get(decision["code"], 503)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        if ratelimit:
            headers.update(ratelimit_headers(ratelimit))
            if decision["code"] == "RATE_LIMITED":
                # When the tightest window next frees units (at least 1 s). /v1/verify does
                # not say how long a burst bucket, a quota or a lockout lasts; /v1/authorize
                # answers those with an exact Retry-After.
                headers["Retry-After"] = str(max(1, ratelimit["reset_seconds"]))
        raise HTTPException(status, detail=decision["code"], headers=headers)

    return check


@app.exception_handler(HTTPException)
async def problem(request: Request, error: HTTPException):
    from fastapi.responses import JSONResponse

    return JSONResponse(
        {"status": error.status_code, "code": error.detail},
        status_code=error.status_code,
        headers=error.headers,
        media_type="application/problem+json",
    )


@app.middleware("http")
async def add_ratelimit_headers(request: Request, call_next):
    response = await call_next(request)
    response.headers.update(getattr(request.state, "ratelimit", {}))
    return response


@app.get("/orders")
async def orders(caller: dict = Depends(require_key("orders:read"))):
    return {"user_id": caller["user_id"], "orders": []}
