from __future__ import annotations

from dataclasses import dataclass

from meterline.auth.scopes import Scope


@dataclass(frozen=True)
class AuthContext:
    """Who is calling: a workspace, through one key, with its scopes."""

    workspace_id: int
    key_id: str
    scopes: frozenset[Scope]

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes
