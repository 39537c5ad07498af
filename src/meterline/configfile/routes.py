"""The workspace's configuration as one document: ``GET /v1/config/export`` answers what
``POST /v1/config/apply`` (and ``meterline apply FILE.yaml``) takes back unchanged."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request

from meterline.api.deps import DB, V1
from meterline.api.routing import MeterlineRoute
from meterline.auth.context import AuthContext
from meterline.auth.deps import require
from meterline.auth.scopes import Scope
from meterline.configfile import service
from meterline.configfile.schemas import ApplyResult, ConfigDocument
from meterline.runtime import runtime_of

router = APIRouter(prefix=f"{V1}/config", tags=["Configuration"], route_class=MeterlineRoute)
Admin = Annotated[AuthContext, Depends(require(Scope.ADMIN))]


@router.get("/export", response_model=ConfigDocument)
def export_config(auth: Admin, db: DB) -> ConfigDocument:
    """Every meter and plan (keyed by key, with the fields of their `POST` bodies) and the
    workspace's settings: the document `POST /v1/config/apply` and `meterline apply`
    take. Applying it back changes nothing."""
    with db.read() as session:
        return service.export(session, auth.workspace_id)


@router.post("/apply", response_model=ApplyResult)
def apply_config(
    auth: Admin,
    db: DB,
    request: Request,
    document: Annotated[
        dict[str, Any],
        Body(
            description="`meters`, `plans` and `workspace`, as `GET /v1/config/export` "
            "answers them; a section left out is left alone."
        ),
    ],
    prune: Annotated[
        bool, Query(description="Delete the meters the document does not name.")
    ] = False,
    dry_run: Annotated[
        bool, Query(description="Check everything and answer the changes; change nothing.")
    ] = False,
) -> ApplyResult:
    """Make the workspace match the document, in one transaction: create what is missing,
    change what differs (a plan that differs is replaced as `PUT` does: its `version`
    goes up by one), and with `prune` delete the meters it does not name. 422 names
    each invalid field by its path in the document (`plans.pro.features.ocr.included`);
    on any error nothing changes."""
    result = service.run(db, auth.workspace_id, document, prune=prune, dry_run=dry_run)
    if result.applied and any(c.object == "workspace" for c in result.changes):
        runtime_of(request).policy_cache.clear()
    return result
