"""An image generator's FastAPI app whose daily and monthly limits are Meterline's
(docs/recipes/daily-monthly-limits.md).

    export METERLINE_URL=http://127.0.0.1:8000 METERLINE_API_KEY=ml_…  # an admin key
    uvicorn app:app --port 8001
    curl -X POST localhost:8001/images -H 'x-user: u_1'   # 200, then 429 past a limit
    curl localhost:8001/images/allowance -H 'x-user: u_1'  # can generate? how many left
    curl localhost:8001/status -H 'x-user: u_1'            # limits, usage, plan, a message

``POST /images`` consumes one generation before it runs (429 at a limit, 503 when
Meterline cannot decide: fail closed); the admin route resets a user's day or month.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint's Annotated
# dependency (a local of create_app) at definition time.

import os
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

import meterline
from meterline.fastapi import install, require_feature

FEATURE = "image_generation"


def user_of(request: Request) -> str:
    return request.headers["x-user"]


def message(limits: list[dict[str, Any]]) -> str:
    if not limits or all(limit["max"] is None for limit in limits):
        return "Unlimited generations on your plan."
    left = {limit["window"]: limit["remaining"] for limit in limits if limit["max"] is not None}
    if min(int(v) for v in left.values()) == 0:
        empty = next(w for w, v in left.items() if int(v) == 0)
        return f"You have used all of this {empty}'s generations."
    return f"{left.get('day')} generations left today, {left.get('month')} this month."


def create_app(client: meterline.Client) -> FastAPI:
    app = FastAPI(title="Image generator")
    install(app)  # refusals as application/problem+json
    generation = require_feature(client, FEATURE, customer=user_of)

    @app.post("/images")
    def generate(checked: Annotated[meterline.CheckResult, Depends(generation)]) -> dict[str, Any]:
        day, month = (limit.get("remaining") for limit in checked.limits)
        return {"image": f"img_{checked.event_id}", "left_today": day, "left_this_month": month}

    @app.get("/images/allowance")
    def allowance(request: Request) -> dict[str, Any]:
        found = client.check(user_of(request), FEATURE)  # a check records nothing
        remaining = {limit["window"]: limit["remaining"] for limit in found.limits}
        return {"can_generate": found.allowed, "reason": found.reason, "remaining": remaining}

    @app.get("/status")
    def status(request: Request) -> dict[str, Any]:
        shown = client.entitlements(user_of(request))
        feature = next(f for f in shown["features"] if f["feature"] == FEATURE)
        return {
            "plan": shown["plan"],
            "period": shown["period"],
            "limits": feature["limits"],
            "exceeded": feature["exceeded"],
            "message": message(feature["limits"]),
        }

    @app.post("/admin/users/{user}/reset")
    def reset(user: str, window: str) -> dict[str, Any]:
        """An admin's "reset today" (or the month): enforcement counts from now; the
        usage already recorded is still billed and listed."""
        found: dict[str, Any] = client.post(
            f"/v1/customers/{user}/limits/reset", {"feature": FEATURE, "window": window}
        )
        return found

    return app


app = create_app(
    meterline.Client(
        api_key=os.environ.get("METERLINE_API_KEY", ""),
        base_url=os.environ.get("METERLINE_URL", "http://127.0.0.1:8000"),
    )
)
