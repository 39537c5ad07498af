"""The configuration document (``meterline apply``, ``GET /v1/config/export``) and the
changes applying one makes.

The document's entries have the HTTP API's body fields: a meter is ``POST /v1/meters``'s
body, a plan ``POST /v1/plans``'s, each keyed by its ``key`` instead of carrying it; the
workspace section has ``PATCH /v1/workspace``'s fields.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from meterline.meters.aggregation import Aggregation
from meterline.plans.schemas import PlanFields


class MeterDefinition(BaseModel):
    """A meter as the document carries it (``POST /v1/meters`` without ``key``)."""

    name: str
    event_type: str
    aggregation: Aggregation
    value_property: str | None
    filter: dict[str, Any]
    group_by: list[str]
    unit: str | None
    stripe_event_name: str | None


class WorkspaceSettings(BaseModel):
    """The workspace's settings (``PATCH /v1/workspace``'s fields but its name)."""

    auto_create_customers: bool
    event_lateness_days: int
    default_plan: str | None
    invoice_grace_days: int
    event_retention_days: int | None


class ConfigDocument(BaseModel):
    """A whole workspace's configuration: what `meterline apply` takes back unchanged."""

    meters: dict[str, MeterDefinition] = Field(description="Meter key → its definition.")
    plans: dict[str, PlanFields] = Field(description="Plan key → its definition.")
    workspace: WorkspaceSettings


class DocumentIn(BaseModel):
    """The document's top level as read; each entry is validated by its own domain's
    schema (``MeterCreate``, ``PlanCreate``, ``WorkspaceUpdate``) with its key."""

    model_config = ConfigDict(extra="forbid")

    meters: dict[str, dict[str, Any]] | None = None
    plans: dict[str, dict[str, Any]] | None = None
    workspace: dict[str, Any] | None = None


class FieldChange(BaseModel):
    field: str = Field(description="Dotted path inside the object (`features.ocr.included`).")
    old: Any = Field(description="The value before (absent: null).")
    new: Any = Field(description="The value after (removed: null).")


class Change(BaseModel):
    object: Literal["meter", "plan", "workspace"]
    key: str = Field(description="The meter's or plan's key; the workspace's name.")
    action: Literal["create", "update", "delete"]
    fields: list[FieldChange] = Field(
        default_factory=list, description="For an update: each field that differs."
    )
    version: Annotated[int | None, Field(description="A plan's version after the change.")] = None


class ApplyResult(BaseModel):
    applied: bool = Field(description="false for a dry run: nothing was changed.")
    changes: list[Change]
    unchanged: int = Field(description="Objects the file names that already match it.")
    not_pruned: list[str] = Field(
        default_factory=list,
        description="With prune: plans the file does not name, kept (plans are never "
        "deleted: subscriptions and invoices refer to them).",
    )
