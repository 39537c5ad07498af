"""A workspace's configuration as one document: exported, and applied idempotently.

Applying creates what is missing and changes what differs through the meters', plans'
and workspace's own services (the same checks as ``POST``/``PATCH``/``PUT``: a plan that
differs is replaced, so its version goes up by one exactly as ``PUT`` does). With
``prune``, meters the document does not name are deleted (as ``DELETE /v1/meters/{key}``
does); plans are never deleted (subscriptions and invoices refer to them), so the ones
it does not name are reported as kept. A section left out of the document (no
``meters:``) is left alone, pruning included.

Everything happens in the caller's one transaction: an error anywhere changes nothing.
Errors name the object and field (``plans.pro.features.ocr.included``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python
from sqlalchemy.orm import Session

from meterline.db import Database
from meterline.errors import FieldError, MeterlineError, ValidationFailed
from meterline.meters import service as meters
from meterline.meters.models import Meter
from meterline.meters.schemas import MeterCreate, MeterUpdate
from meterline.plans import service as plans
from meterline.plans.models import Plan
from meterline.plans.schemas import PlanCreate, PlanReplace
from meterline.workspaces import service as workspaces
from meterline.workspaces.schemas import WorkspaceUpdate

from .schemas import (
    ApplyResult,
    Change,
    ConfigDocument,
    DocumentIn,
    FieldChange,
    MeterDefinition,
    WorkspaceSettings,
)

PAGE = 1000
# Pydantic's error types are stable snake_case already; these read better renamed (as
# the API's 422s name them).
_CODE_FOR = {"missing": "missing_field", "extra_forbidden": "unknown_field"}
Entry = TypeVar("Entry", bound=BaseModel)


# -- export -----------------------------------------------------------------------------


def _all_meters(session: Session, workspace_id: int) -> list[Meter]:
    found: list[Meter] = []
    after: str | None = None
    while True:
        page = meters.list_page(session, workspace_id, limit=PAGE, after=after)
        found.extend(page.items)
        if page.next_cursor is None:
            return found
        after = page.next_cursor


def _all_plans(session: Session, workspace_id: int) -> list[Plan]:
    found: list[Plan] = []
    after: str | None = None
    while True:
        page = plans.list_page(session, workspace_id, limit=PAGE, after=after)
        found.extend(page.items)
        if page.next_cursor is None:
            return found
        after = page.next_cursor


def _meter_definition(meter: Meter) -> MeterDefinition:
    return MeterDefinition.model_validate(meter, from_attributes=True)


def _workspace_settings(session: Session, workspace_id: int) -> WorkspaceSettings:
    row = workspaces.get(session, workspace_id)
    default = plans.by_id(session, row.default_plan_id).key if row.default_plan_id else None
    return WorkspaceSettings(
        auto_create_customers=row.auto_create_customers,
        event_lateness_days=row.event_lateness_days,
        default_plan=default,
        invoice_grace_days=row.invoice_grace_days,
        event_retention_days=row.event_retention_days,
    )


def export(session: Session, workspace_id: int) -> ConfigDocument:
    """Every meter and plan of the workspace (by key) and its settings."""
    return ConfigDocument(
        meters={
            m.key: _meter_definition(m)
            for m in sorted(_all_meters(session, workspace_id), key=lambda m: m.key)
        },
        plans={
            p.key: plans.definition(p)
            for p in sorted(_all_plans(session, workspace_id), key=lambda p: p.key)
        },
        workspace=_workspace_settings(session, workspace_id),
    )


# -- reading the document ---------------------------------------------------------------


def _field_errors(exc: ValidationError, prefix: tuple[str, ...]) -> list[FieldError]:
    return [
        FieldError(
            ".".join((*prefix, *(str(p) for p in e["loc"]))),
            _CODE_FOR.get(e["type"], e["type"]),
            e["msg"].removeprefix("Value error, "),
        )
        for e in exc.errors()
    ]


def _entries(
    section: str,
    entries: dict[str, dict[str, Any]],
    schema: type[Entry],
    errors: list[FieldError],
) -> dict[str, Entry]:
    """Each entry validated by ``schema`` with its key (a ``key`` field, when written,
    must be the entry's own)."""
    parsed: dict[str, Entry] = {}
    for key, entry in entries.items():
        where = (section, str(key))
        if not isinstance(entry, dict):
            errors.append(FieldError(".".join(where), "not_a_mapping", "must be a mapping"))
            continue
        if "key" in entry and entry["key"] != key:
            errors.append(FieldError(".".join((*where, "key")), "key_mismatch", f"is not {key!r}"))
            continue
        try:
            parsed[key] = schema.model_validate({**entry, "key": key})
        except ValidationError as exc:
            errors.extend(_field_errors(exc, where))
    return parsed


class _Parsed(BaseModel):
    meters: dict[str, MeterCreate] | None
    plans: dict[str, PlanCreate] | None
    workspace: WorkspaceUpdate | None


def _parse(data: dict[str, Any]) -> _Parsed:
    try:
        top = DocumentIn.model_validate(data)
    except ValidationError as exc:
        raise _invalid(_field_errors(exc, ())) from exc
    errors: list[FieldError] = []
    parsed_meters = (
        None if top.meters is None else _entries("meters", top.meters, MeterCreate, errors)
    )
    parsed_plans = None if top.plans is None else _entries("plans", top.plans, PlanCreate, errors)
    workspace = None
    if top.workspace is not None:
        try:
            workspace = WorkspaceUpdate.model_validate(top.workspace)
        except ValidationError as exc:
            errors.extend(_field_errors(exc, ("workspace",)))
    if errors:
        raise _invalid(errors)
    return _Parsed(meters=parsed_meters, plans=parsed_plans, workspace=workspace)


def _invalid(errors: list[FieldError]) -> ValidationFailed:
    summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return ValidationFailed(f"The configuration is invalid: {summary}{more}", errors=errors)


@contextmanager
def _about(*where: str) -> Iterator[None]:
    """A domain service's error, re-raised naming the document's object it concerns."""
    try:
        yield
    except MeterlineError as exc:
        prefix = ".".join(where)
        errors = [FieldError(f"{prefix}.{e.field}", e.code, e.message) for e in exc.errors]
        errors = errors or [FieldError(prefix, exc.code, exc.detail)]
        raised = type(exc)(f"{prefix}: {exc.detail}", errors=errors, extra=exc.extra)
        raise raised from exc


# -- differences --------------------------------------------------------------------------


def differences(old: Any, new: Any, path: str = "") -> list[FieldChange]:
    """Field-level differences between two JSON-like values (``Decimal`` compared by
    value: ``0.05`` equals ``0.050``); lists of the same length are compared item by item."""
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[FieldChange] = []
        for key in [*old, *(k for k in new if k not in old)]:
            found.extend(differences(old.get(key), new.get(key), f"{path}.{key}" if path else key))
        return found
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            change
            for index, (a, b) in enumerate(zip(old, new, strict=True))
            for change in differences(a, b, f"{path}.{index}")
        ]
    # True == 1 in Python: a boolean only ever equals a boolean.
    if isinstance(old, bool) == isinstance(new, bool) and old == new:
        return []
    return [FieldChange(field=path, old=to_jsonable_python(old), new=to_jsonable_python(new))]


def _desired_meter(data: MeterCreate) -> dict[str, Any]:
    """What ``meters.create`` would store for ``data`` (its defaults filled in)."""
    return {
        "name": data.name or data.key,
        "event_type": data.event_type,
        "aggregation": data.aggregation,
        "value_property": data.value_property,
        "filter": data.filter,
        "group_by": data.group_by,
        "unit": data.unit or ("second" if data.aggregation == "duration" else None),
        "stripe_event_name": data.stripe_event_name,
    }


# -- applying -----------------------------------------------------------------------------


def _apply_meters(
    session: Session, workspace_id: int, wanted: dict[str, MeterCreate], result: ApplyResult
) -> None:
    existing = meters.by_keys(session, workspace_id, set(wanted))
    for key, data in wanted.items():
        with _about("meters", key):
            meter = existing.get(key)
            if meter is None:
                meters.create(session, workspace_id, data)
                result.changes.append(Change(object="meter", key=key, action="create"))
                continue
            current = _meter_definition(meter).model_dump()
            desired = _desired_meter(data)
            changed = differences(current, desired)
            if not changed:
                result.unchanged += 1
                continue
            names = {change.field.split(".")[0] for change in changed}
            meters.update(
                session,
                workspace_id,
                key,
                MeterUpdate.model_validate({name: desired[name] for name in names}),
            )
            result.changes.append(Change(object="meter", key=key, action="update", fields=changed))


def _prune_meters(
    session: Session, workspace_id: int, named: set[str], result: ApplyResult
) -> None:
    for meter in _all_meters(session, workspace_id):
        if meter.key not in named:
            with _about("meters", meter.key):
                meters.delete(session, workspace_id, meter.key)
            result.changes.append(Change(object="meter", key=meter.key, action="delete"))


def _apply_plans(
    session: Session, workspace_id: int, wanted: dict[str, PlanCreate], result: ApplyResult
) -> None:
    for key, data in wanted.items():
        with _about("plans", key):
            plan = plans.find(session, workspace_id, key)
            if plan is None:
                created = plans.create(session, workspace_id, data)
                result.changes.append(
                    Change(object="plan", key=key, action="create", version=created.version)
                )
                continue
            fields = data.model_dump(exclude={"key"})
            changed = differences(plans.definition(plan).model_dump(), fields)
            if not changed:
                result.unchanged += 1
                continue
            replaced = plans.replace(session, workspace_id, key, PlanReplace.model_validate(fields))
            result.changes.append(
                Change(
                    object="plan",
                    key=key,
                    action="update",
                    fields=changed,
                    version=replaced.version,
                )
            )


def _apply_workspace(
    session: Session, workspace_id: int, wanted: WorkspaceUpdate, result: ApplyResult
) -> None:
    with _about("workspace"):
        row = workspaces.get(session, workspace_id)
        current = {"name": row.name, **_workspace_settings(session, workspace_id).model_dump()}
        named = {name: getattr(wanted, name) for name in wanted.model_fields_set}
        changed = differences({k: current[k] for k in named}, named)
        if not changed:
            result.unchanged += 1
            return
        name = row.name
        patch = WorkspaceUpdate.model_validate({c.field: named[c.field] for c in changed})
        plan_id = None
        if patch.default_plan is not None:
            plan = plans.find(session, workspace_id, patch.default_plan)
            if plan is None:
                raise ValidationFailed(
                    f"No plan {patch.default_plan!r}.",
                    errors=[FieldError("default_plan", "unknown_plan", "no such plan")],
                )
            plan_id = plan.id
        workspaces.update(session, workspace_id, patch, plan_id)
    result.changes.append(Change(object="workspace", key=name, action="update", fields=changed))


def apply(
    session: Session, workspace_id: int, document: dict[str, Any], *, prune: bool = False
) -> ApplyResult:
    """Make the workspace match ``document`` (see the module's docstring), in ``session``:
    the caller commits, or rolls back for a dry run."""
    parsed = _parse(document)
    result = ApplyResult(applied=True, changes=[], unchanged=0)
    if parsed.meters is not None:
        _apply_meters(session, workspace_id, parsed.meters, result)
        if prune:
            _prune_meters(session, workspace_id, set(parsed.meters), result)
    if parsed.plans is not None:
        _apply_plans(session, workspace_id, parsed.plans, result)
        if prune:
            result.not_pruned = sorted(
                p.key for p in _all_plans(session, workspace_id) if p.key not in parsed.plans
            )
    if parsed.workspace is not None:
        _apply_workspace(session, workspace_id, parsed.workspace, result)
    return result


class _DryRun(Exception):
    def __init__(self, result: ApplyResult) -> None:
        super().__init__("dry run")
        self.result = result


def run(
    db: Database,
    workspace_id: int,
    document: dict[str, Any],
    *,
    prune: bool = False,
    dry_run: bool = False,
) -> ApplyResult:
    """``apply`` in one transaction: committed, or (``dry_run``) rolled back after every
    change was made and checked, so a dry run finds every error a real run would."""
    try:
        with db.write() as session:
            result = apply(session, workspace_id, document, prune=prune)
            if dry_run:
                raise _DryRun(result.model_copy(update={"applied": False}))
    except _DryRun as done:
        return done.result
    return result
