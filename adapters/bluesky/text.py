"""Bluesky text rules, pure: grapheme clusters (the 300 limit), UTF-8 byte offsets for facets, record keys.

Bluesky counts a post's length in extended grapheme clusters (the PDS uses `Intl.Segmenter`) and also
limits it to 3000 UTF-8 bytes; facets (mentions, links) point into the text by UTF-8 *byte* offsets.
`graphemes` follows Unicode's UAX #29 rules with the standard library's character database: combining
marks, ZWJ emoji sequences, variation selectors, skin-tone modifiers, tag sequences (subdivision flags),
regional-indicator pairs, Hangul syllables, CR LF and prepended marks join a cluster. It does not join
Indic conjuncts (rule GB9c, Unicode 15.1), so for Devanagari, Bengali and a few more scripts it counts
more clusters than Bluesky: the bot is stricter there, never more lenient.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

MAX_BYTES = 3000
"""app.bsky.feed.post `text`: maxLength 3000 (bytes) besides maxGraphemes 300."""

# Extended_Pictographic (emoji-data.txt), merged into ranges; close enough for GB11 (ZWJ sequences).
_PICTOGRAPHIC = (
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049), (0x2122, 0x2122),
    (0x2139, 0x2139), (0x2194, 0x2199), (0x21A9, 0x21AA), (0x231A, 0x231B), (0x2328, 0x2328),
    (0x2388, 0x2388), (0x23CF, 0x23CF), (0x23E9, 0x23F3), (0x23F8, 0x23FA), (0x24C2, 0x24C2),
    (0x25AA, 0x25AB), (0x25B6, 0x25B6), (0x25C0, 0x25C0), (0x25FB, 0x25FE), (0x2600, 0x2605),
    (0x2607, 0x2612), (0x2614, 0x2685), (0x2690, 0x2705), (0x2708, 0x2712), (0x2714, 0x2714),
    (0x2716, 0x2716), (0x271D, 0x271D), (0x2721, 0x2721), (0x2728, 0x2728), (0x2733, 0x2734),
    (0x2744, 0x2744), (0x2747, 0x2747), (0x274C, 0x274C), (0x274E, 0x274E), (0x2753, 0x2755),
    (0x2757, 0x2757), (0x2763, 0x2767), (0x2795, 0x2797), (0x27A1, 0x27A1), (0x27B0, 0x27B0),
    (0x27BF, 0x27BF), (0x2934, 0x2935), (0x2B05, 0x2B07), (0x2B1B, 0x2B1C), (0x2B50, 0x2B50),
    (0x2B55, 0x2B55), (0x3030, 0x3030), (0x303D, 0x303D), (0x3297, 0x3297), (0x3299, 0x3299),
    (0x1F000, 0x1F0FF), (0x1F10D, 0x1F10F), (0x1F12F, 0x1F12F), (0x1F16C, 0x1F171), (0x1F17E, 0x1F17F),
    (0x1F18E, 0x1F18E), (0x1F191, 0x1F19A), (0x1F1AD, 0x1F1E5), (0x1F201, 0x1F20F), (0x1F21A, 0x1F21A),
    (0x1F22F, 0x1F22F), (0x1F232, 0x1F23A), (0x1F23C, 0x1F23F), (0x1F249, 0x1F3FA), (0x1F400, 0x1F53D),
    (0x1F546, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F774, 0x1F77F), (0x1F7D5, 0x1F7FF), (0x1F80C, 0x1F80F),
    (0x1F848, 0x1F84F), (0x1F85A, 0x1F85F), (0x1F888, 0x1F88F), (0x1F8AE, 0x1F8FF), (0x1F90C, 0x1F93A),
    (0x1F93C, 0x1F945), (0x1F947, 0x1FAFF), (0x1FC00, 0x1FFFD),
)
_PREPEND = frozenset({0x06DD, 0x070F, 0x0890, 0x0891, 0x08E2, 0x0D4E, 0x110BD, 0x110CD, 0x111C2, 0x111C3,
                      0x1193F, 0x11941, 0x11A3A, 0x11A84, 0x11A85, 0x11A86, 0x11A87, 0x11A88, 0x11A89,
                      0x11D46, *range(0x0600, 0x0606)})
_EXTEND_EXTRA = frozenset({0x200C, 0xFF9E, 0xFF9F, *range(0x1F3FB, 0x1F400), *range(0xE0020, 0xE0080)})
_SPACING_EXTRA = frozenset({0x0E33, 0x0EB3})


def _pictographic(cp: int) -> bool:
    return any(low <= cp <= high for low, high in _PICTOGRAPHIC) if cp >= 0xA9 else False


def _kind(char: str) -> str:
    """The Grapheme_Cluster_Break property of one character (UAX #29), approximated as documented above."""
    cp = ord(char)
    if cp == 0x0D:
        return "CR"
    if cp == 0x0A:
        return "LF"
    if cp == 0x200D:
        return "ZWJ"
    if 0x1F1E6 <= cp <= 0x1F1FF:
        return "RI"
    if cp in _EXTEND_EXTRA:
        return "Extend"
    if cp in _PREPEND:
        return "Prepend"
    if cp in _SPACING_EXTRA:
        return "SpacingMark"
    if 0x1100 <= cp <= 0x115F or 0xA960 <= cp <= 0xA97C:
        return "L"
    if 0x1160 <= cp <= 0x11A7 or 0xD7B0 <= cp <= 0xD7C6:
        return "V"
    if 0x11A8 <= cp <= 0x11FF or 0xD7CB <= cp <= 0xD7FB:
        return "T"
    if 0xAC00 <= cp <= 0xD7A3:
        return "LV" if (cp - 0xAC00) % 28 == 0 else "LVT"
    category = unicodedata.category(char)
    if category in ("Mn", "Me"):
        return "Extend"
    if category == "Mc":
        return "SpacingMark"
    if category in ("Cc", "Cf", "Zl", "Zp", "Cs"):
        return "Control"
    return "Other"


def _joins(before: str, after: str, *, zwj_after_pictograph: bool, after_pictograph: bool, ri_run: int) -> bool:
    """No boundary between two characters of these kinds (rules GB3 to GB13)."""
    if before == "CR" and after == "LF":
        return True
    if before in ("Control", "CR", "LF") or after in ("Control", "CR", "LF"):
        return False
    if before == "L" and after in ("L", "V", "LV", "LVT"):
        return True
    if before in ("LV", "V") and after in ("V", "T"):
        return True
    if before in ("LVT", "T") and after == "T":
        return True
    if after in ("Extend", "ZWJ", "SpacingMark") or before == "Prepend":
        return True
    if zwj_after_pictograph and after_pictograph:
        return True
    return before == "RI" and after == "RI" and ri_run % 2 == 1


def graphemes(text: str) -> list[str]:
    """The user-perceived characters of `text` (extended grapheme clusters)."""
    clusters: list[str] = []
    start = 0
    before = ""
    pictograph_run = False  # the cluster so far ends in Extended_Pictographic Extend*
    zwj_after_pictograph = False
    ri_run = 0
    for index, char in enumerate(text):
        kind = _kind(char)
        pictograph = _pictographic(ord(char))
        if index and not _joins(before, kind, zwj_after_pictograph=zwj_after_pictograph,
                                after_pictograph=pictograph, ri_run=ri_run):
            clusters.append(text[start:index])
            start = index
        zwj_after_pictograph = kind == "ZWJ" and pictograph_run
        pictograph_run = pictograph or (pictograph_run and kind == "Extend")
        ri_run = ri_run + 1 if kind == "RI" else 0
        before = kind
    if text:
        clusters.append(text[start:])
    return clusters


def grapheme_count(text: str) -> int:
    return len(graphemes(text))


def utf8_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def byte_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Character offsets [start, end) in `text` → UTF-8 byte offsets (what a facet's index holds)."""
    first = utf8_length(text[:start])
    return first, first + utf8_length(text[start:end])


def handle_pattern(handle: str) -> re.Pattern[str]:
    """`@handle` as a whole mention: not inside a longer handle, an e-mail address or a word."""
    return re.compile(rf"(?<![\w@.]){re.escape('@' + handle)}(?!\.?[A-Za-z0-9-])", re.IGNORECASE)


_URL = re.compile(r"https?://[^\s<>\"]+")
_TRAILING = ".,;:!?'\"»”’"


def link_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, url) character spans of the http(s) links in `text`, without trailing punctuation."""
    spans = []
    for match in _URL.finditer(text):
        url = match.group(0)
        while url and (url[-1] in _TRAILING or (url[-1] == ")" and url.count("(") < url.count(")"))):
            url = url[:-1]
        if len(url) > len("https://"):
            spans.append((match.start(), match.start() + len(url), url))
    return spans


def facets(text: str, *, mentions: dict[str, str]) -> list[dict[str, Any]]:
    """Rich-text facets for `text`: every `@handle` of `mentions` (handle → DID) and every link, with UTF-8
    byte offsets (app.bsky.richtext.facet#byteSlice: start inclusive, end exclusive)."""
    found: list[tuple[int, int, dict[str, Any]]] = []
    for handle, did in mentions.items():
        for match in handle_pattern(handle).finditer(text):
            found.append((match.start(), match.end(), {"$type": "app.bsky.richtext.facet#mention", "did": did}))
    for start, end, url in link_spans(text):
        if not any(s < end and start < e for s, e, _ in found):
            found.append((start, end, {"$type": "app.bsky.richtext.facet#link", "uri": url}))
    result = []
    for start, end, feature in sorted(found, key=lambda f: f[0]):
        byte_start, byte_end = byte_span(text, start, end)
        result.append({"index": {"byteStart": byte_start, "byteEnd": byte_end}, "features": [feature]})
    return result


_BASE32_SORTABLE = "234567abcdefghijklmnopqrstuvwxyz"
TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")


def tid_from_int(value: int) -> str:
    """A 63-bit number as a TID (13 base32-sortable characters, the top bit zero)."""
    value &= (1 << 63) - 1
    return "".join(_BASE32_SORTABLE[(value >> (5 * (12 - i))) & 31] for i in range(13))


def record_key(idempotency_key: str) -> str:
    """The post's record key, derived from the reply's idempotency key: a TID-shaped key (posts must have
    one), the same for every attempt, so a repeated createRecord cannot make a second post."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).digest()
    return tid_from_int(int.from_bytes(digest[:8], "big"))
