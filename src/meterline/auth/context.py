from __future__ import annotations

from dataclasses import dataclass

from meterline.auth.scopes import Scope
from meterline.ratelimits.gcra import Rate


@dataclass(frozen=True)
class AuthContext:
    """Who is calling: a workspace, through one key with its scopes, or through a
    customer token (``customer`` set, no scopes: only what ``limit_to`` lets through).

    ``rate`` is the request rate the key is held to, resolved when the key is loaded
    (and cached with it): the key's own ``rate_limit``, else the server-wide default;
    None when neither applies or the key is unlimited (then nothing is counted)."""

    workspace_id: int
    key_id: str
    scopes: frozenset[Scope]
    customer: str | None = None
    rate: Rate | None = None

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes

    def limit_to(self, external_id: str) -> None:
        """A customer token reaches its own customer only (403 otherwise)."""
        if self.customer is not None and self.customer != external_id:
            from meterline.errors import InsufficientScope

            raise InsufficientScope(f"This token is for customer {self.customer!r} only.")
