"""Operations endpoints, no key needed: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from meterline.api.deps import DB
from meterline.api.problems import problem_response
from meterline.errors import MeterlineError
from meterline.runtime import runtime_of

router = APIRouter(tags=["Operations"])


class NotReady(MeterlineError):
    status = 503
    code = "not_ready"
    title = "Not ready"
    default_detail = "The database cannot be reached."


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "The database cannot be reached."}})
def readyz(db: DB) -> JSONResponse:
    """The process can reach its database."""
    try:
        db.ping()
    except SQLAlchemyError:
        return problem_response(NotReady())
    return JSONResponse({"status": "ok", "database": db.url.get_backend_name()})


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text format."""
    return Response(generate_latest(runtime_of(request).registry), media_type=CONTENT_TYPE_LATEST)
