"""The jobs outbox: one row per key, leases that keep two runners apart, a failing job
that rolls back alone and is retried later, maintenance sweeps once per interval, and
the sweeps themselves (reservation expiry, raw-event retention)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from jobs_support import at, frozen, run_jobs
from limits_support import meter
from meterline.db import Database
from meterline.jobs import service as jobs
from meterline.jobs.models import Job
from meterline.jobs.service import LEASE, Claimed, Registry, Runner
from meterline.runtime import runtime_of
from support import Api, assert_problem

NOW = at("2026-11-01T00:00:00")


def _remember(seen: list[str]) -> jobs.WorkHandler:
    def work(session: Session, job: Claimed, now: Any, scratch: Any) -> None:
        if job.payload.get("fail"):
            # Write something first: it must be rolled back with the failure.
            jobs.schedule(session, "noted", f"trace:{job.key}", now)
            raise RuntimeError("boom")
        seen.append(job.key)

    return work


def _schedule(db: Database, *keys: str, **payload: Any) -> None:
    with db.write() as session:
        for key in keys:
            jobs.schedule(session, "note", key, NOW, payload=payload)


def _rows(db: Database) -> dict[str, Job]:
    with db.read() as session:
        return {job.key: job for job in jobs.pending(session)}


def test_one_row_per_key_and_a_failure_rolls_back_alone(db: Database) -> None:
    seen: list[str] = []
    runner = Runner(db, Registry(work={"note": _remember(seen)}))
    _schedule(db, "a", "b")
    _schedule(db, "a")  # the same key again: still one job
    _schedule(db, "bad", fail=True)
    assert runner.run_due(NOW) == 3
    assert sorted(seen) == ["a", "b"]
    rows = _rows(db)
    assert list(rows) == ["bad"]  # done jobs are gone; its trace was rolled back
    bad = rows["bad"]
    assert bad.attempts == 1
    assert bad.last_error == "RuntimeError: boom"
    assert bad.run_at == NOW + timedelta(seconds=5)  # backoff, then again
    assert runner.run_due(NOW + timedelta(seconds=4)) == 0
    assert runner.run_due(NOW + timedelta(seconds=5)) == 1
    assert _rows(db)["bad"].attempts == 2
    assert _rows(db)["bad"].run_at == NOW + timedelta(seconds=15)


def test_a_leased_job_is_not_taken_twice_until_its_lease_ends(db: Database) -> None:
    first = Runner(db, Registry(work={"note": _remember([])}))
    second = Runner(db, Registry(work={"note": _remember([])}))
    _schedule(db, "x")
    (claimed,) = first.claim(NOW)
    assert (claimed.key, claimed.attempts) == ("x", 1)
    assert second.claim(NOW) == []
    assert second.claim(NOW + LEASE - timedelta(seconds=1)) == []
    # The first runner died: after the lease, another takes it.
    (again,) = second.claim(NOW + LEASE)
    assert (again.key, again.attempts) == ("x", 2)


def test_scheduling_while_running_is_not_lost(db: Database) -> None:
    later = NOW + timedelta(days=30)

    def work(session: Session, job: Claimed, now: Any, scratch: Any) -> Any:
        jobs.schedule(session, "note", "x", now)  # the change that needs another look
        return later

    runner = Runner(db, Registry(work={"note": work}))
    _schedule(db, "x")
    runner.run_due(NOW)
    assert _rows(db)["x"].run_at == NOW  # not pushed to ``later``


def test_maintenance_runs_once_per_interval(db: Database) -> None:
    runs: list[Any] = []
    runner = Runner(db, Registry(maintenance={"sweep": (60.0, lambda _db, now: runs.append(now))}))
    runner.ensure_maintenance(NOW)
    runner.ensure_maintenance(NOW)  # any number of processes may
    assert list(_rows(db)) == ["maintenance:sweep"]
    assert runner.drain(NOW) == 1
    assert runner.drain(NOW + timedelta(seconds=59)) == 0
    assert runner.drain(NOW + timedelta(seconds=60)) == 1
    assert runs == [NOW, NOW + timedelta(seconds=60)]


def test_expired_holds_are_marked_and_still_settle(api: Api) -> None:
    meter(api, "tokens", "sum")
    plan = {"key": "p", "name": "P", "currency": "USD", "features": {"tokens": {}}}
    assert api.post("/v1/plans", json=plan).status_code == 201
    with frozen("2026-11-01T00:00:00") as clock:
        body = {"customer": "acme", "feature": "tokens", "quantity": "100", "ttl_seconds": 60}
        api.post("/v1/customers", json={"external_id": "acme"})
        sub = {"customer": "acme", "plan": "p"}
        assert api.post("/v1/subscriptions", json=sub).status_code == 201
        hold = api.post("/v1/reservations", json=body).json()
        clock.set(at("2026-11-01T00:02:00"))
        run_jobs(api)
        state = runtime_of(api.client.app)
        from meterline.entitlements.models import Reservation

        with state.db.read() as session:
            assert session.get(Reservation, hold["id"]).status == "expired"
        r = api.post(f"/v1/reservations/{hold['id']}/settle", json={"quantity": "80"})
        assert (r.status_code, r.json()["status"]) == (200, "settled")


def test_retention_deletes_old_raw_events_and_keeps_totals(api: Api) -> None:
    meter(api, "scan")
    r = api.patch("/v1/workspace", json={"event_retention_days": 10})
    assert_problem(r, 422, "validation_error")
    assert r.json()["errors"][0]["code"] == "retention_below_lateness"
    r = api.patch("/v1/workspace", json={"event_retention_days": 40})
    assert r.json()["event_retention_days"] == 40
    with frozen("2026-08-01T00:00:00") as clock:
        old = [{"id": f"o{i}", "type": "scan", "customer": "acme"} for i in range(3)]
        assert api.post("/v1/events", json={"events": old}).json()["accepted"] == 3
        clock.set(at("2026-09-05T00:00:00"))
        assert api.post("/v1/events", json={"id": "new", "type": "scan", "customer": "acme"})
        clock.set(at("2026-09-15T00:00:00"))
        run_jobs(api)
        listed = api.get("/v1/events", params={"customer": "acme"}).json()["data"]
        assert [e["id"] for e in listed] == ["new"]
        params = {"customer": "acme", "from": "2026-07-01T00:00:00Z", "to": "2026-10-01T00:00:00Z"}
        usage = api.get("/v1/meters/scan/usage", params=params).json()["data"]
        assert [u["value"] for u in usage] == ["4"]  # the rollups keep every event
    r = api.patch("/v1/workspace", json={"event_retention_days": None})
    assert r.json()["event_retention_days"] is None
