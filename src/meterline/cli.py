"""The `meterline` command."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from meterline.auth import onboarding
from meterline.auth import service as auth_service
from meterline.auth.schemas import KeyRateLimit
from meterline.auth.scopes import Scope
from meterline.config import Settings
from meterline.db import Database
from meterline.errors import MeterlineError
from meterline.kit.decimals import display_decimal
from meterline.workspaces import service as workspaces

app = typer.Typer(
    help="Meterline: usage metering, real-time limits, credits and usage-based billing.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
workspaces_app = typer.Typer(help="Create and list workspaces (tenants).", no_args_is_help=True)
keys_app = typer.Typer(help="Create API keys from the command line.", no_args_is_help=True)
events_app = typer.Typer(help="Work with usage events in bulk.", no_args_is_help=True)
credits_app = typer.Typer(help="Check and maintain credit ledgers.", no_args_is_help=True)
stripe_app = typer.Typer(
    help="Stripe sync: report usage now, reconcile with Stripe.", no_args_is_help=True
)
app.add_typer(workspaces_app, name="workspaces")
app.add_typer(keys_app, name="keys")
app.add_typer(events_app, name="events")
app.add_typer(credits_app, name="credits")
app.add_typer(stripe_app, name="stripe")

DEMO_DATABASE_URL = "sqlite:///meterline-demo.db"

Workspace = Annotated[
    str | None,
    typer.Option(help="Workspace name or id [default: the only workspace]", show_default=False),
]

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="sqlite:///path.db or postgresql://user@host/db "
        "[default: METERLINE_DATABASE_URL, else sqlite:///meterline.db]",
        show_default=False,
    ),
]


def _settings(database_url: str | None, **overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if database_url is not None:
        values["database_url"] = database_url
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise _fail(problems) from exc


def _fail(message: str) -> typer.Exit:
    """Print the error; the caller raises what this returns (exit status 1)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@contextmanager
def _database(settings: Settings, *, migrate: bool = True) -> Iterator[Database]:
    """The database, migrated first (or, with ``migrate=False``, checked to be current).

    A ``MeterlineError`` inside the block becomes a one-line error and exit status 1.
    """
    from meterline import migrations

    db = Database(settings.database_url, settings)
    try:
        if migrate:
            migrations.upgrade(db)
        elif migrations.current_revision(db) != migrations.head_revision():
            raise _fail("the database schema is not up to date: run `meterline migrate`")
        yield db
    except MeterlineError as exc:
        raise _fail(exc.detail) from exc
    finally:
        db.dispose()


def _announce_key(heading: str, key: str, bootstrap_key: str | None = None) -> None:
    if bootstrap_key is not None and key == bootstrap_key:
        typer.echo(f"{heading} the one in METERLINE_BOOTSTRAP_KEY.")
        return
    typer.echo(heading)
    typer.echo(f"  {key}")
    typer.echo("Store it now: it is shown only this once.")


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: 127.0.0.1]")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default: 8000]")] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Processes serving requests [default: 1]"),
    ] = None,
    database_url: DatabaseUrl = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Start with a demo workspace full of data (in meterline-demo.db unless "
            "a database is named) and print a fresh admin key for it.",
        ),
    ] = False,
) -> None:
    """Run the API, the dashboard and background work.

    Background jobs run in a `meterline worker` process that serve starts, watches and
    restarts (METERLINE_JOBS_MODE=thread: on a thread of each serving process instead).

    Applies migrations first (unless METERLINE_AUTO_MIGRATE=0). On an empty database it
    creates a workspace and prints its admin key once (METERLINE_BOOTSTRAP_KEY sets it).

    The web dashboard is at /dashboard (its URL is printed): sign in with an admin or
    read key. Customers' own usage pages (the portal) are at /portal/<customer token>.
    """
    import uvicorn

    from meterline import demo as demo_data
    from meterline.app import create_app
    from meterline.supervisor import supervised

    if demo and database_url is None and "METERLINE_DATABASE_URL" not in os.environ:
        database_url = DEMO_DATABASE_URL
    settings = _settings(database_url, host=host, port=port, workers=workers)
    bootstrap_key = settings.bootstrap_key.get_secret_value() if settings.bootstrap_key else None
    with _database(settings, migrate=settings.auto_migrate) as db, db.write() as session:
        if demo:
            fresh, key = demo_data.ensure(session, admin_key=bootstrap_key)
            if fresh:
                typer.echo(f"Created the {demo_data.DEMO_WORKSPACE!r} workspace with demo data.")
            _announce_key("Demo admin API key:", key, bootstrap_key if fresh else None)
        else:
            created = onboarding.bootstrap(session, admin_key=bootstrap_key)
            if created is not None:
                typer.echo(f"Created workspace {created.workspace.name!r}.")
                _announce_key("Admin API key:", created.admin_key, bootstrap_key)
    if demo:
        from meterline.jobs.registry import runner

        with _database(settings, migrate=False) as db:
            runner(db, settings).drain()  # last month's period closes into its invoice
    base = f"http://{settings.host}:{settings.port}"
    typer.echo(f"Dashboard: {base}/dashboard (sign in with an admin or read key)")
    typer.echo(f"Meterline on {base} (docs at /docs)")
    sys.stdout.flush()
    with (
        supervised(settings.database_url)
        if settings.jobs_poll_seconds > 0 and settings.jobs_mode == "process"
        else nullcontext()
    ):
        if settings.workers == 1:
            uvicorn.run(
                create_app(settings, jobs_thread=settings.jobs_mode == "thread"),
                host=settings.host,
                port=settings.port,
                log_level=settings.log_level,
            )
            return
        os.environ["METERLINE_DATABASE_URL"] = settings.database_url
        uvicorn.run(
            "meterline.app:app_from_env",
            factory=True,
            workers=settings.workers,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
        )


@app.command()
def openapi(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Print the API's OpenAPI document (what /openapi.json serves), without a server or
    a database: the JavaScript client's types are generated from it."""
    from meterline.app import create_app

    document = json.dumps(create_app(Settings()).openapi(), indent=2, sort_keys=True) + "\n"
    if output is None:
        typer.echo(document, nl=False)
    else:
        output.write_text(document)


@app.command()
def worker(
    database_url: DatabaseUrl = None,
    once: Annotated[bool, typer.Option("--once", help="Run every job due now, then exit.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", hidden=True)] = False,
) -> None:
    """Run background work only: period closes and invoices, invoice finalization,
    credit allocation and expiry, reservation expiry, retention cleanup.

    Any number of workers (and `meterline serve` processes) may run against one
    database: each job runs once. Stops on Ctrl+C or SIGTERM after the job at hand.
    """
    import signal
    import time

    from meterline.jobs.registry import runner
    from meterline.supervisor import parent_gone

    settings = _settings(database_url)
    with _database(settings) as db:
        jobs = runner(db, settings)
        jobs.ensure_maintenance()
        if once:
            typer.echo(f"Ran {jobs.drain()} jobs.")
            return
        # The handler only sets a flag: one that took a lock (``Event.set``) deadlocked
        # when a second signal came while the first still held it (a supervised worker
        # gets SIGTERM from serve and again from its parent-death signal).
        stopping = False

        def stop(*_: object) -> None:
            nonlocal stopping
            stopping = True

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, stop)
        if not quiet:
            typer.echo("Meterline worker running background jobs (Ctrl+C stops).")
            sys.stdout.flush()
        while not stopping and not parent_gone():
            try:
                jobs.drain()
            except Exception:  # logged; the next poll tries again
                logging.getLogger("meterline").exception("running jobs failed")
            until = time.monotonic() + (settings.jobs_poll_seconds or 1.0)
            while not stopping and time.monotonic() < until:
                time.sleep(min(0.1, max(0.0, until - time.monotonic())))


@app.command()
def migrate(
    database_url: DatabaseUrl = None,
    check: Annotated[
        bool, typer.Option("--check", help="Only verify that the models match the migrations.")
    ] = False,
) -> None:
    """Apply pending schema migrations (safe to run from several processes at once)."""
    from alembic.util import AutogenerateDiffsDetected

    from meterline import migrations

    with _database(_settings(database_url)) as db:
        if check:
            try:
                migrations.check(db)
            except AutogenerateDiffsDetected as exc:
                raise _fail(f"models and migrations differ: {exc}") from exc
            typer.echo("Models and migrations agree.")
        typer.echo(f"Schema at revision {migrations.current_revision(db)}.")


@workspaces_app.command("create")
def workspaces_create(
    name: Annotated[str, typer.Argument(help="A unique name, 1-100 characters.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Create a workspace and print its first admin key."""
    with _database(_settings(database_url)) as db, db.write() as session:
        created = onboarding.create_workspace(session, name)
    typer.echo(f"Created workspace {created.workspace.name!r} (id {created.workspace.id}).")
    _announce_key("Admin API key:", created.admin_key)


@workspaces_app.command("list")
def workspaces_list(database_url: DatabaseUrl = None) -> None:
    """List workspaces: id and name."""
    with _database(_settings(database_url)) as db, db.read() as session:
        for workspace in workspaces.list_workspaces(session):
            typer.echo(f"{workspace.id}\t{workspace.name}")


@keys_app.command("create")
def keys_create(
    workspace: Annotated[
        str | None,
        typer.Option(help="Workspace name or id [default: the only workspace]", show_default=False),
    ] = None,
    name: Annotated[str, typer.Option(help="What the key is for.")] = "cli",
    scope: Annotated[
        list[Scope] | None,
        typer.Option(help="admin, ingest or read; repeat for several [default: admin]"),
    ] = None,
    rate_limit_per_second: Annotated[
        str | None,
        typer.Option(
            help="The key's own request rate (requests a second, e.g. 2.5), in place of "
            "METERLINE_RATE_LIMIT_PER_SECOND [default: that server-wide rate]",
            show_default=False,
        ),
    ] = None,
    rate_limit_burst: Annotated[
        int | None,
        typer.Option(
            help="Requests at once before the key's own rate applies "
            "[default: the rate rounded up]",
            show_default=False,
        ),
    ] = None,
    unlimited: Annotated[
        bool,
        typer.Option("--unlimited", help="Never rate-limit this key, whatever the default."),
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an API key and print it (for automation, or when every admin key is lost)."""
    rate_limit = _key_rate_limit(rate_limit_per_second, rate_limit_burst, unlimited)
    with _database(_settings(database_url)) as db, db.write() as session:
        target = workspaces.find_workspace(session, workspace)
        row, secret = auth_service.create_key(
            session, target.id, name=name, scopes=scope or [Scope.ADMIN], rate_limit=rate_limit
        )
        described = _describe_rate_limit(auth_service.rate_limit_of(row))
    typer.echo(f"Created key {row.id} ({', '.join(row.scopes)}) in {target.name!r}{described}.")
    _announce_key("API key:", secret)


def _key_rate_limit(
    per_second: str | None, burst: int | None, unlimited: bool
) -> KeyRateLimit | None:
    """The key's own rate from the options, checked as the API checks it."""
    if unlimited and (per_second is not None or burst is not None):
        raise _fail("--unlimited takes no --rate-limit-per-second or --rate-limit-burst")
    if burst is not None and per_second is None:
        raise _fail("--rate-limit-burst needs --rate-limit-per-second")
    if not unlimited and per_second is None:
        return None
    try:
        return KeyRateLimit(per_second=per_second, burst=burst)
    except ValidationError as exc:
        problems = "; ".join(
            f"--rate-limit-{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}"
            if e["loc"]
            else e["msg"]
            for e in exc.errors()
        )
        raise _fail(problems) from exc


def _describe_rate_limit(rate_limit: KeyRateLimit | None) -> str:
    if rate_limit is None:
        return ""
    if rate_limit.per_second is None:
        return ", unlimited"
    per_second = display_decimal(rate_limit.per_second)
    return f", {per_second} requests a second ({rate_limit.burst} at once)"


@credits_app.command("verify")
def credits_verify(
    repair: Annotated[
        bool, typer.Option("--repair", help="Rebuild the cached balances from the ledger.")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Check every customer's cached balance (and every grant's remaining) against the
    ledger. Exit status 1 when they differ (after --repair: 0, with what was fixed)."""
    from sqlalchemy import text

    from meterline.credits import ledger
    from meterline.customers import service as customers

    # One consistent snapshot: SQLite's write lock, PostgreSQL's repeatable read.
    with (
        _database(_settings(database_url)) as db,
        db.write() if (db.is_sqlite or repair) else db.read() as session,
    ):
        if not db.is_sqlite:
            session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        found = ledger.verify(session, repair=repair)
        names = customers.external_ids(session, {m.customer_id for m in found})
    for m in found:
        typer.echo(
            f"{names.get(m.customer_id, m.customer_id)}\t{m.what}\t"
            f"cached {display_decimal(m.cached)}\tledger {display_decimal(m.ledger)}"
        )
    if not found:
        typer.echo("Every credit balance matches its ledger.")
    elif repair:
        typer.echo(f"Repaired {len(found)} cached value(s) from the ledger.")
    else:
        typer.echo(f"{len(found)} cached value(s) differ from the ledger.", err=True)
        raise typer.Exit(1)


@credits_app.command("sweep")
def credits_sweep(database_url: DatabaseUrl = None) -> None:
    """Expire due grants and grant current plan allocations now (what `meterline serve`
    does every few seconds)."""
    from meterline.credits.service import sweep
    from meterline.kit.time import utc_now

    with _database(_settings(database_url)) as db:
        expired, allocated = sweep(db, utc_now())
    typer.echo(f"Expired grants of {expired} customer(s); granted {allocated} allocation(s).")


@events_app.command("purge")
def events_purge(database_url: DatabaseUrl = None) -> None:
    """Delete raw events older than each workspace's `event_retention_days` now (what
    background work does every hour). Usage totals, limits and invoices keep their
    numbers: they come from the meters' rollups."""
    from meterline.kit.time import utc_now
    from meterline.recording.pipeline import purge_expired

    with _database(_settings(database_url)) as db:
        deleted = purge_expired(db, utc_now())
    typer.echo(f"Deleted {deleted} raw event(s) past retention.")


@stripe_app.command("sync")
def stripe_sync(workspace: Workspace = None, database_url: DatabaseUrl = None) -> None:
    """Report every closed hour to Stripe now (meter_events mode) and send the invoices
    waiting (invoices mode), from this process; then print the reports by status.

    Uses METERLINE_STRIPE_API_BASE / METERLINE_STRIPE_METER_EVENTS_BASE when set."""
    from meterline.billing_sync import service as stripe
    from meterline.kit.time import utc_now

    with _database(_settings(database_url)) as db:
        with db.read() as session:
            target = workspaces.find_workspace(session, workspace)
        counts = stripe.sync_now(db, target.id, utc_now())
    summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("sent", "pending", "failed"))
    typer.echo(f"Stripe reports of {target.name!r}: {summary}.")


def _moment(text: str, name: str) -> datetime:
    """A time given on the command line, through the one gate every client time takes."""
    from meterline.ingestion.validation import parse_timestamp
    from meterline.kit.time import TimeOutOfRange

    try:
        return parse_timestamp(text)
    except TimeOutOfRange as exc:
        raise _fail(f"{name}: {exc}") from exc


@stripe_app.command("reconcile")
def stripe_reconcile(
    start: Annotated[str, typer.Option("--from", help="Whole hour, with offset.")],
    end: Annotated[str, typer.Option("--to", help="Whole hour, with offset; not after now.")],
    repair: Annotated[
        bool, typer.Option("--repair", help="Send the missing deltas (now, from here).")
    ] = False,
    workspace: Workspace = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Compare Stripe's meter event summaries with what Meterline reported, per customer,
    meter and hour, and print every difference. Exit status 1 when there is any (after
    --repair: 0, with what was sent)."""
    from meterline.billing_sync import reconcile
    from meterline.billing_sync import service as stripe
    from meterline.kit.time import utc_now

    with _database(_settings(database_url)) as db:
        with db.read() as session:
            target = workspaces.find_workspace(session, workspace)
        now = utc_now()
        found = reconcile.reconcile(
            db, target.id, _moment(start, "--from"), _moment(end, "--to"), now, repair=repair
        )
        if found.queued:
            stripe.send_due(db, target.id, now)
    for row in found.differences:
        typer.echo(
            f"{row.customer}\t{row.meter}\tmeterline {display_decimal(row.meterline)}\t"
            f"reported {row.reported}\tstripe {row.stripe}\tpending {row.pending}"
            + (f"\t{row.problem}" if row.problem else "")
        )
        for hour in row.hours:
            typer.echo(
                f"  {hour.hour_start.isoformat()}\treported {hour.reported}\tstripe {hour.stripe}"
            )
    if not found.differences:
        typer.echo(f"Stripe matches Meterline for {found.checked} customer and meter pair(s).")
    elif repair:
        typer.echo(f"Repaired: {found.queued} report(s) sent to close the differences.")
    else:
        typer.echo(f"{len(found.differences)} difference(s) with Stripe.", err=True)
        raise typer.Exit(1)


ServerUrl = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="METERLINE_URL",
        help="Talk to this Meterline server (http://host:8000) instead of a database "
        "[default: METERLINE_URL]",
        show_default=False,
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="METERLINE_API_KEY",
        help="An admin key, with --url [default: METERLINE_API_KEY]",
        show_default=False,
    ),
]


def _server(url: str, api_key: str | None) -> Any:
    """An HTTP client for ``--url`` (httpx, as the Python SDK uses)."""
    import httpx

    if not api_key:
        raise _fail("--url needs --api-key (or METERLINE_API_KEY): an admin key")
    return httpx.Client(
        base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {api_key}"}, timeout=120
    )


def _server_answer(response: Any) -> dict[str, Any]:
    """The JSON of a 2xx answer; otherwise a ``MeterlineError``-like problem to report."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        if isinstance(body, dict):
            return {"problem": body}
        raise _fail(f"{response.request.url}: HTTP {response.status_code}")
    if not isinstance(body, dict):
        raise _fail(f"{response.request.url}: the answer is not a JSON object")
    return body


@app.command("apply")
def apply_config(
    file: Annotated[
        Path, typer.Argument(help="A YAML (or JSON) file: meters:, plans:, workspace:")
    ],
    prune: Annotated[
        bool, typer.Option("--prune", help="Delete the meters the file does not name.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print what would change (per field) and change nothing."),
    ] = False,
    workspace: Workspace = None,
    database_url: DatabaseUrl = None,
    url: ServerUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Make a workspace's meters, plans and settings match FILE, in one transaction:
    create what is missing, change what differs (a changed plan gets a new version, as
    PUT /v1/plans/{key} does), and with --prune delete the meters FILE does not name.
    Running it again changes nothing. An invalid FILE changes nothing either: each
    error names its line and field, and the exit status is 1.

    Works on the database (--database-url, as every command) or, with --url and
    --api-key, through a running server (POST /v1/config/apply)."""
    from meterline.configfile import document as config_document
    from meterline.configfile import service as config
    from meterline.configfile import text as config_text
    from meterline.configfile.schemas import ApplyResult

    source = str(file)
    if not file.is_file():
        raise _fail(f"no such file: {source}")
    try:
        located = config_document.load(file.read_text(encoding="utf-8"))
    except config_document.FileError as exc:
        where = f"{source}:{exc.line}" if exc.line else source
        raise _fail(f"{where}: {exc.message}") from exc
    except UnicodeDecodeError as exc:
        raise _fail(f"{source}: not UTF-8 text") from exc

    def refuse(problem: dict[str, Any]) -> typer.Exit:
        for line in config_text.errors(
            source, located, problem.get("errors", []), str(problem.get("detail"))
        ):
            typer.echo(f"error: {line}", err=True)
        typer.echo(f"Nothing was changed ({problem.get('code')}).", err=True)
        return typer.Exit(1)

    if url is not None:
        with _server(url, api_key) as client:
            answer = _server_answer(
                client.post(
                    "/v1/config/apply",
                    params={"prune": prune, "dry_run": dry_run},
                    json=located.data,
                )
            )
        if "problem" in answer:
            raise refuse(answer["problem"])
        result = ApplyResult.model_validate(answer)
    else:
        with _database(_settings(database_url)) as db:
            with db.read() as session:
                target = workspaces.find_workspace(session, workspace)
            try:
                result = config.run(db, target.id, located.data, prune=prune, dry_run=dry_run)
            except MeterlineError as exc:
                raise refuse(exc.problem()) from exc
    for line in config_text.changes(result):
        typer.echo(line)


@app.command("export")
def export_config(
    output_format: Annotated[
        str, typer.Option("--format", help="yaml or json", case_sensitive=False)
    ] = "yaml",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    workspace: Workspace = None,
    database_url: DatabaseUrl = None,
    url: ServerUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Print a workspace's meters, plans and settings as the document `meterline apply`
    takes (what GET /v1/config/export answers): applying it back changes nothing."""
    from meterline.configfile import service as config
    from meterline.configfile import text as config_text

    if output_format.lower() not in ("yaml", "json"):
        raise _fail("--format is yaml or json")
    if url is not None:
        with _server(url, api_key) as client:
            document = _server_answer(client.get("/v1/config/export"))
        if "problem" in document:
            raise _fail(str(document["problem"].get("detail")))
    else:
        with _database(_settings(database_url)) as db, db.read() as session:
            target = workspaces.find_workspace(session, workspace)
            document = config.export(session, target.id).model_dump(mode="json")
    written = (
        config_text.as_yaml(document)
        if output_format.lower() == "yaml"
        else json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    )
    if output is None:
        typer.echo(written, nl=False)
    else:
        output.write_text(written, encoding="utf-8")


@contextmanager
def _progress(label: str, total_bytes: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar by bytes for a file; a running byte count for a stream."""
    if total_bytes is not None:
        with typer.progressbar(length=total_bytes, label=label, file=sys.stderr) as bar:
            yield bar.update
        return
    seen = [0, 0]

    def advance(n: int) -> None:
        seen[0] += n
        if seen[0] - seen[1] >= 1 << 20:
            seen[1] = seen[0]
            typer.echo(f"\r{label}: {seen[0] >> 20} MiB read", nl=False, err=True)

    yield advance
    typer.echo(f"\r{label}: done{' ' * 20}", err=True)


@events_app.command("import")
def events_import(
    file: Annotated[str, typer.Argument(help="A JSON Lines file of events, or - for stdin.")],
    workspace: Annotated[
        str | None,
        typer.Option(help="Workspace name or id [default: the only workspace]", show_default=False),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Events per commit.")] = 5000,
    rejects: Annotated[
        str | None,
        typer.Option(
            help="Where refused lines go [default: FILE.rejected.jsonl]", show_default=False
        ),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Import events exactly as POST /v1/events would take them: validated one by one,
    idempotent by id (re-running an import counts nothing twice)."""

    from meterline.recording import pipeline
    from meterline.recording.importer import import_lines

    source = None if file == "-" else Path(file)
    if source is not None and not source.is_file():
        raise _fail(f"no such file: {file}")
    rejects_path = (
        Path(rejects)
        if rejects
        else Path(f"{source}.rejected.jsonl" if source else "meterline-import.rejected.jsonl")
    )
    with _database(_settings(database_url)) as db:
        with db.read() as session:
            target = workspaces.find_workspace(session, workspace)
            policy = pipeline.policy(session, target.id)
        stream = source.open(encoding="utf-8") if source else sys.stdin
        label = f"Importing into {target.name!r}"
        with (
            stream,
            rejects_path.open("w", encoding="utf-8") as out,
            _progress(label, source.stat().st_size if source else None) as advance,
        ):
            summary = import_lines(
                db, policy, stream, out, batch_size=batch_size, on_progress=advance
            )
    typer.echo(
        f"{summary.lines} lines: {summary.accepted} accepted, {summary.duplicates} duplicates, "
        f"{summary.rejected} rejected, {summary.unmetered} unmetered"
    )
    if summary.rejected:
        reasons = ", ".join(f"{code} {n}" for code, n in sorted(summary.reasons.items()))
        typer.echo(f"Rejected lines ({reasons}) are in {rejects_path}")
    else:
        rejects_path.unlink(missing_ok=True)


def main() -> None:
    try:
        app()
    except OperationalError as exc:
        typer.echo(f"error: cannot use the database: {exc.orig or exc}", err=True)
        sys.exit(1)
