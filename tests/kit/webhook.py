"""Signed generic-webhook deliveries."""

from __future__ import annotations

import json
from typing import Any

from adapters import signing

GENERIC_SECRET = "generic-test-secret"


def event(event_id: str, text: str = "My order never arrived", *, kind: str = "mention", name: str = "Jane Doe",
          handle: str = "@jane", author_id: str = "cust-1", followers: int = 120, **extra: Any) -> dict[str, Any]:
    return {"id": event_id, "kind": kind, "text": text,
            "author": {"id": author_id, "name": name, "handle": handle, "followers": followers}, **extra}


def signed(body: dict[str, Any] | bytes, *, secret: str = GENERIC_SECRET, now: float | None = None,
           ) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return raw, {"Content-Type": "application/json", **signing.headers(secret, raw, now)}
