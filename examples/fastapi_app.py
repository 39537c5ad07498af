"""A FastAPI app that meters and limits its own endpoints with Meterline.

Start Meterline (``meterline serve --demo`` prints a key), then::

    export METERLINE_API_KEY=ml_…  METERLINE_URL=http://127.0.0.1:8000
    uvicorn examples.fastapi_app:app --port 8001
    curl -X POST localhost:8001/scan -H 'x-org: org_acme'      # 200, then 429 at the limit
    curl -X POST localhost:8001/reports -H 'x-org: org_acme'   # recorded when it succeeds

``/scan`` consumes one OCR scan before it runs (429 at a limit, 402 without credits,
as problem+json); ``/reports`` records a custom report only when building it worked.
"""

from __future__ import annotations

import os

from fastapi import Depends, FastAPI, Header, HTTPException, Request

import meterline
from meterline.fastapi import install, require_feature


def org_of(request: Request) -> str:
    return request.headers.get("x-org", "anonymous")


def create_app(client: meterline.Client) -> FastAPI:
    app = FastAPI(title="Metered example")
    install(app)  # refusals as application/problem+json
    scans = require_feature(client, "ocr_scan", customer=org_of)

    @app.post("/scan", dependencies=[Depends(scans)])
    def scan() -> dict[str, bool]:
        return {"scanned": True}

    @client.track_usage("custom_report", customer=lambda org, pages: org, quantity=1)
    def build_report(org: str, pages: int) -> dict[str, int]:
        if pages <= 0:
            raise ValueError("nothing to report")
        return {"pages": pages}

    @app.post("/reports")
    def report(pages: int = 1, x_org: str = Header("anonymous")) -> dict[str, int]:
        try:
            return build_report(x_org, pages)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc

    return app


app = create_app(
    meterline.Client(
        api_key=os.environ.get("METERLINE_API_KEY", ""),
        base_url=os.environ.get("METERLINE_URL", "http://127.0.0.1:8000"),
        flush_interval=0.5,
    )
)
