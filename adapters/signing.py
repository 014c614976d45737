"""The SocialOps webhook signature, shared by the generic webhook (inbound) and its replies (outbound).

`X-SocialOps-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>` with
`X-SocialOps-Timestamp: <unix seconds>`; anything outside a 5-minute window is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import time

WINDOW_S = 300


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    return {"X-SocialOps-Timestamp": timestamp, "X-SocialOps-Signature": sign(secret, timestamp, body)}


def verify(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float | None = None
) -> str | None:
    """None when valid, else the reason (for the 401 body)."""
    if not timestamp or not signature:
        return "missing X-SocialOps-Timestamp or X-SocialOps-Signature header"
    try:
        stamp = int(timestamp)
    except ValueError:
        return "X-SocialOps-Timestamp is not a unix time"
    current = time.time() if now is None else now
    if abs(current - stamp) > WINDOW_S:
        return "X-SocialOps-Timestamp is outside the 5-minute window"
    if not hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.encode("utf-8", "surrogateescape")):
        return "signature does not match"
    return None
