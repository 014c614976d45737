"""Making untrusted customer text safe for Slack mrkdwn.

Slack reads `<…>` as mentions, broadcasts and labelled links, and `&` starts an entity: escaping
those three characters turns `<!channel>`, `<@U123>` and `<https://evil|https://good>` into plain
text. Bare `@channel`/`@here`/`@everyone` only ping with `link_names`, which the bot never sets;
a zero-width joiner after the `@` keeps them inert even if a client would try.
"""

from __future__ import annotations

import re
import unicodedata

_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_CONTROL = {c for c in map(chr, range(32)) if c not in "\n\t"}
ZWJ = "\u2060"


def escape(text: str) -> str:
    text = "".join(ch for ch in text if ch not in _CONTROL and unicodedata.category(ch) != "Cs")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub(lambda m: "@" + ZWJ + m.group(1), text)


def escape_plain(text: str) -> str:
    """For plain_text objects: no markup is read there, but control characters still go."""
    return "".join(ch for ch in text if ch not in _CONTROL)


def cut(text: str, limit: int, suffix: str = "…") -> str:
    """Shorten already-escaped text to `limit` characters without splitting an entity."""
    if len(text) <= limit:
        return text
    keep = text[: max(0, limit - len(suffix))]
    amp = keep.rfind("&")
    if amp != -1 and ";" not in keep[amp:]:
        keep = keep[:amp]
    return keep + suffix


def quote(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in text.splitlines() or [""])


def link(url: str | None, label: str) -> str:
    """A link we build: only http(s) URLs, and label characters that cannot end the link early."""
    if not url or not url.startswith(("https://", "http://")) or any(c in url for c in "<>| \n"):
        return escape(label)
    return f"<{url}|{escape(label).replace('|', '¦')}>"
