"""API key secrets: how they look, how they are made and how they are stored.

A key is ``ml_`` + 43 URL-safe random characters (256 bits). Only its SHA-256 is
stored: the key is high-entropy, so a slow password hash would add latency to every
request and no safety. The first 8 random characters stay visible as its prefix.
"""

from __future__ import annotations

import hashlib
import re
import secrets

KEY_PREFIX = "ml_"
VISIBLE_CHARS = 8
_KEY_RE = re.compile(r"^ml_[A-Za-z0-9_-]{32,128}$")


def is_well_formed_key(key: str) -> bool:
    return bool(_KEY_RE.match(key))


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def visible_prefix(key: str) -> str:
    return key[: len(KEY_PREFIX) + VISIBLE_CHARS]
