"""Settings: one pydantic-settings object, read from ``METERLINE_*`` environment variables."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///meterline.db"


class Settings(BaseSettings):
    """Every knob of Meterline. The README's configuration table lists the same names."""

    model_config = SettingsConfigDict(env_prefix="METERLINE_", extra="ignore")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL: sqlite:///path.db (default) or postgresql://…",
    )
    host: str = Field("127.0.0.1", description="Address `meterline serve` listens on.")
    port: int = Field(8000, ge=0, le=65535, description="Port `meterline serve` listens on.")
    bootstrap_key: SecretStr | None = Field(
        None, description="On an empty database, the first admin key (instead of a random one)."
    )
    auto_migrate: bool = Field(
        True, description="`meterline serve` applies pending migrations at start."
    )
    max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 above)."
    )
    db_pool_size: int = Field(10, ge=1, description="Connections kept open per process.")
    sqlite_busy_timeout_ms: int = Field(
        10_000, ge=0, description="How long a SQLite writer waits for the lock before failing."
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description="SQLite fsync policy: FULL survives power loss; NORMAL only process crashes.",
    )
    sqlite_cache_mib: int = Field(
        64, ge=2, description="SQLite page cache per connection, in MiB (keeps indexes hot)."
    )
    api_key_touch_seconds: int = Field(
        60, ge=0, description="An API key's last_used_at is written at most this often."
    )
    cache_seconds: float = Field(
        5.0,
        ge=0,
        description="API keys and workspace settings are cached this long per process; a "
        "key revoked, or given a new rate limit, through another process is seen within "
        "this time (0: no cache).",
    )
    decision_timeout_ms: int = Field(
        2000,
        ge=10,
        description="A check, hold or settlement that cannot get its answer from PostgreSQL "
        "this fast is denied (fail closed); SQLite waits up to its busy timeout.",
    )
    rate_limit_per_second: float = Field(
        0.0,
        ge=0,
        description="Requests a second each API key may make (on average), across every "
        "process on the database; over it, 429 `rate_limited` with Retry-After. A key's own "
        "`rate_limit` takes its place. 0: off (the default; then only keys with a "
        "rate_limit of their own are counted).",
    )
    rate_limit_burst: int | None = Field(
        None,
        ge=1,
        description="Requests a key may make at once before its rate applies (default: "
        "the rate a second, rounded up).",
    )
    credit_sweep_seconds: float = Field(
        15.0,
        ge=0,
        description="How often background work expires due credit grants (reads and debits "
        "do it too, at the exact time); plan allocations of customers on the default plan "
        "are swept every fourth interval (subscriptions get theirs from the billing cycle). "
        "0: off.",
    )
    jobs_poll_seconds: float = Field(
        1.0,
        ge=0,
        description="How often `meterline serve` and `meterline worker` look for due "
        "background jobs (period closes, invoice finalization, sweeps). 0: `meterline "
        "serve` runs none (leave them to `meterline worker` processes).",
    )
    jobs_mode: Literal["process", "thread", "off"] = Field(
        "process",
        description="Where `meterline serve` runs background jobs: `process` (the default) "
        "in a `meterline worker` process it starts, watches and restarts, so jobs never "
        "compete with requests for the CPU; `thread` on a thread of each serving process; "
        "`off`: none (leave them to `meterline worker` processes you run). An app from "
        "`create_app` under another ASGI server runs them on a thread unless `off`.",
    )
    webhooks_allow_private: bool = Field(
        False,
        description="Allow webhook endpoints on loopback, private and link-local addresses "
        "(local development and tests); refused (422) otherwise.",
    )
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, le=60, description="How long one webhook delivery attempt may take."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins (comma-separated, `*` for any) whose pages may call the API "
        "with a customer token: CORS for token-authenticated routes only, never for API keys.",
    )
    stripe_api_base: str | None = Field(
        None,
        description="Where Stripe API requests go (default: Stripe's own, "
        "https://api.stripe.com); tests point it at a local fake.",
    )
    stripe_meter_events_base: str | None = Field(
        None,
        description="Where the v2 meter event stream goes (default: Stripe's own, "
        "https://meter-events.stripe.com).",
    )
    stripe_requests_per_second: float = Field(
        25.0,
        gt=0,
        description="Client-side limit on Stripe requests per process and Stripe account "
        "(Stripe allows 25 a second in sandboxes, 1,000 meter events a second live).",
    )
    stripe_timeout_seconds: float = Field(
        30.0, gt=0, le=300, description="How long one Stripe request may take."
    )
    stripe_aggregate_seconds: float = Field(
        3600.0,
        ge=0,
        description="How often closed hours are aggregated and their usage sent to Stripe "
        "(each run re-reads the last day, so late events there go as deltas). 0: off.",
    )
    stripe_report_seconds: float = Field(
        86400.0,
        ge=0,
        description="How often every hour Stripe still accepts (the last 35 days) is read "
        "again, so any later change is sent as a delta. 0: off.",
    )
    stripe_retry_failed_seconds: float = Field(
        21600.0,
        ge=0,
        description="How often reports that failed are tried again. 0: only by hand.",
    )
    dashboard_snapshot_seconds: float = Field(
        60.0,
        ge=0,
        description="The dashboard's revenue figures across customers (overview, customers "
        "list, revenue page) come from a snapshot of every customer's upcoming invoice, "
        "computed in the background when a page finds it older than this (labelled with its "
        "as-of time). 0: computed afresh on every page view.",
    )
    portal_frame_ancestors: str = Field(
        "'none'",
        description="Who may embed the customer portal (/portal/…) in a frame: the CSP "
        "frame-ancestors sources, space-separated (e.g. `https://app.example.com`); "
        "`'none'` forbids framing.",
    )
    workers: int = Field(1, ge=1, le=64, description="`meterline serve` processes.")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origin_list(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for origin in value:
                if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", str(origin)):
                    raise ValueError(
                        f"METERLINE_CORS_ORIGINS: {origin!r} is not an origin "
                        "(scheme://host[:port], no path) or *"
                    )
        return value

    @field_validator("portal_frame_ancestors")
    @classmethod
    def _frame_sources(cls, value: str) -> str:
        if not value.strip() or any(c in value for c in ";,\r\n"):
            raise ValueError(
                "METERLINE_PORTAL_FRAME_ANCESTORS is a space-separated list of CSP sources "
                "(no ; or ,), or 'none'"
            )
        return " ".join(value.split())

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        from meterline.db import normalize_url

        normalize_url(value)  # raises ValueError for anything but SQLite and PostgreSQL
        return value

    @field_validator("bootstrap_key")
    @classmethod
    def _bootstrap_key_shape(cls, value: SecretStr | None) -> SecretStr | None:
        from meterline.kit.keys import is_well_formed_key

        if value is not None and not is_well_formed_key(value.get_secret_value()):
            raise ValueError(
                "METERLINE_BOOTSTRAP_KEY must be `ml_` followed by at least 32 URL-safe "
                "characters (A-Z a-z 0-9 - _)"
            )
        return value
