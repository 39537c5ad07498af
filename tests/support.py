"""Helpers the tests share."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from fastapi.testclient import TestClient

PG_URL = os.environ.get("METERLINE_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgres"] if PG_URL else ["sqlite"]  # what database tests run on


@dataclass
class Api:
    """An HTTP client acting as one workspace's key."""

    client: TestClient
    key: str
    workspace_id: int

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", **(extra or {})}

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx2.Response:
        return self.client.request(method, path, headers=self._headers(headers), **kw)

    def get(self, path: str, **kw: Any) -> httpx2.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx2.Response:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> httpx2.Response:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx2.Response:
        return self.request("DELETE", path, **kw)

    def with_client(self, client: TestClient) -> Api:
        """The same key against another app (another process, as it were)."""
        return Api(client, self.key, self.workspace_id)

    def with_key(self, key: str) -> Api:
        return Api(self.client, key, self.workspace_id)

    def new_key(self, *scopes: str) -> Api:
        r = self.post("/v1/api-keys", json={"name": "-".join(scopes), "scopes": list(scopes)})
        assert r.status_code == 201, r.text
        return self.with_key(r.json()["key"])


def assert_problem(response: httpx2.Response, status: int, code: str) -> dict[str, Any]:
    """The response is problem+json with this status and stable code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:meterline:problem:{code}"
    assert body["title"]
    assert body["detail"]
    return body


README = Path(__file__).resolve().parents[1] / "README.md"
DOCS = README.parent / "docs"


def doc_pages() -> list[Path]:
    """The README, then every page of the documentation site (docs/), in path order."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def readme_block(marker: str) -> str:
    """The fenced block right after ``<!-- marker -->`` in the README or a page of docs/
    (as .ci/run reads the test command); the marker names one block in all of them."""
    found = [
        (page, lines)
        for page in doc_pages()
        if f"<!-- {marker} -->" in (lines := page.read_text().splitlines())
    ]
    assert len(found) == 1, (marker, [str(page) for page, _ in found])
    lines = found[0][1]
    start = lines.index(f"<!-- {marker} -->") + 1
    assert lines[start].startswith("```"), f"no fenced block after <!-- {marker} -->"
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
    return "\n".join(lines[start + 1 : end]) + "\n"
