"""Importing events from JSON Lines: the same validation and ingestion as the API,
in batches, with every refused line kept together with its reason."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

import orjson

from meterline.db import Database
from meterline.recording import pipeline


@dataclass
class ImportSummary:
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    unmetered: int = 0  # accepted lines no meter counts (yet)
    reasons: dict[str, int] = field(default_factory=dict)


def import_lines(
    db: Database,
    policy: pipeline.Policy,
    lines: Iterable[str],
    rejects: TextIO,
    *,
    batch_size: int = 5000,
    on_progress: Callable[[int], None] = lambda _: None,
) -> ImportSummary:
    """Ingest JSON Lines; each refused line goes to ``rejects`` as
    ``{"line", "code", "message", "text"}``. ``on_progress`` gets the bytes consumed."""
    summary = ImportSummary()
    batch: list[tuple[int, str, Any]] = []

    def reject(number: int, code: str, message: str, line_text: str) -> None:
        summary.rejected += 1
        summary.reasons[code] = summary.reasons.get(code, 0) + 1
        rejects.write(
            orjson.dumps(
                {"line": number, "code": code, "message": message, "text": line_text.rstrip("\n")}
            ).decode()
            + "\n"
        )

    def flush() -> None:
        if not batch:
            return
        valid, refused = pipeline.check([raw for _, _, raw in batch], policy)
        with db.write() as session:
            outcome = pipeline.record(session, policy, valid, rejected_before=len(refused))
        summary.accepted += outcome.accepted
        summary.duplicates += outcome.duplicates
        summary.unmetered += outcome.unmetered
        for rejection in sorted(refused + outcome.rejections):
            number, line_text, _ = batch[rejection.index]
            reject(number, rejection.code, rejection.message, line_text)
        batch.clear()

    for number, line_text in enumerate(lines, 1):
        summary.lines += 1
        on_progress(len(line_text.encode()))
        if not line_text.strip():
            summary.lines -= 1
            continue
        try:
            batch.append((number, line_text, orjson.loads(line_text)))
        except orjson.JSONDecodeError as exc:
            reject(number, "malformed_json", f"not valid JSON: {exc}", line_text)
        if len(batch) >= batch_size:
            flush()
    flush()
    return summary
