"""How X counts a post's length (twitter-text v3 "weighted length"), so the modal refuses what X would refuse.

Per twitter-text's v3 configuration: the text is NFC-normalised; every URL counts 23 whatever its length;
an emoji (including skin-tone, ZWJ, keycap and flag sequences) counts 2; other code points count 1 in the
ranges 0-4351 (Latin, Greek, Cyrillic, Arabic and Persian, Hebrew, Devanagari...), 8192-8205,
8208-8223 and 8242-8247, and 2 everywhere else (CJK, Hangul, most symbols). Limit: 280.

URL detection is a reasonable subset of twitter-text's extractor: `http(s)://` links, and bare domains
with a common top-level domain (`acme.com/help`), trailing punctuation excluded. Pure: no I/O.
"""

from __future__ import annotations

import re
import unicodedata

MAX_WEIGHTED_LENGTH = 280
URL_LENGTH = 23
DM_MAX_LENGTH = 10_000
"""X Direct Messages take up to 10,000 characters."""

_LIGHT = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
_TLDS = (
    "com|net|org|info|biz|io|co|ai|app|dev|me|ly|tv|gg|xyz|shop|store|online|site|tech|blog|news|help|support|"
    "de|fi|se|no|dk|is|ee|lv|lt|pl|cz|sk|at|ch|nl|be|lu|fr|es|pt|it|ie|uk|eu|gr|ro|bg|hu|hr|si|rs|ua|ru|tr|"
    "ir|il|ae|sa|eg|in|pk|cn|jp|kr|tw|hk|sg|my|th|vn|id|ph|au|nz|ca|us|mx|br|ar|cl|za|ng|ke"
)
_SCHEME_URL = re.compile(r"(?i)\bhttps?://[^\s<>\"]+")
_BARE_URL = re.compile(
    r"(?i)(?<![\w@.\-/])(?:www\.)?(?:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?\.)+(?:" + _TLDS + r")(?![\w\-])"
    r"(?:[/?#][^\s<>\"]*)?"
)
_TRAILING = ".,!?;:'\"*"

_ZWJ = 0x200D
_VS16 = 0xFE0F
_KEYCAP = 0x20E3


def _pictographic(cp: int) -> bool:
    """A code point that starts an emoji: the emoji blocks of the supplementary planes and the BMP symbol
    blocks (arrows, technical, geometric, misc symbols, dingbats...)."""
    return (0x1F000 <= cp <= 0x1FAFF or 0x2190 <= cp <= 0x21FF or 0x2300 <= cp <= 0x23FF
            or 0x25A0 <= cp <= 0x27BF or 0x2900 <= cp <= 0x297F or 0x2B00 <= cp <= 0x2BFF
            or cp in (0x00A9, 0x00AE, 0x203C, 0x2049, 0x2122, 0x2139, 0x24C2, 0x3030, 0x303D, 0x3297, 0x3299))


def _modifier(cp: int) -> bool:
    return cp == _VS16 or 0x1F3FB <= cp <= 0x1F3FF or 0xE0020 <= cp <= 0xE007F


def _code_point_weight(cp: int) -> int:
    return 1 if any(low <= cp <= high for low, high in _LIGHT) else 2


def _emoji_end(cps: list[int], start: int) -> int:
    """The index after the emoji sequence starting at `start`, or `start` when there is none."""
    n = len(cps)
    cp = cps[start]
    if 0x1F1E6 <= cp <= 0x1F1FF:  # regional indicators: a flag is a pair
        return start + 2 if start + 1 < n and 0x1F1E6 <= cps[start + 1] <= 0x1F1FF else start + 1
    if cp < 0x80 and chr(cp) in "0123456789#*":  # keycap: 1️⃣
        i = start + 1
        if i < n and cps[i] == _VS16:
            i += 1
        return i + 1 if i < n and cps[i] == _KEYCAP else start
    if not _pictographic(cp):
        return start
    bmp_text_default = cp < 0x1F000
    i = start + 1
    while i < n and _modifier(cps[i]):
        i += 1
    if bmp_text_default and i == start + 1 and not (i < n and cps[i] == _ZWJ):
        return start  # a plain symbol (©, →, ☀ without VS16) is not an emoji: counted by code point
    while i + 1 < n and cps[i] == _ZWJ and _pictographic(cps[i + 1]):
        i += 2
        while i < n and _modifier(cps[i]):
            i += 1
    return i


def _plain_weight(text: str) -> int:
    cps = [ord(c) for c in text]
    total, i = 0, 0
    while i < len(cps):
        end = _emoji_end(cps, i)
        if end > i:
            total += 2
            i = end
        else:
            total += _code_point_weight(cps[i])
            i += 1
    return total


def _url_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for pattern in (_SCHEME_URL, _BARE_URL):
        for match in pattern.finditer(text):
            start, end = match.span()
            while end > start and text[end - 1] in _TRAILING:
                end -= 1
            if text[end - 1] == ")" and "(" not in text[start:end]:
                end -= 1
            if pattern is _SCHEME_URL and "." not in text[start:end].split("://", 1)[1].split("/", 1)[0]:
                continue  # http://localhost: not a link X recognises
            if all(end <= s or start >= e for s, e in spans):
                spans.append((start, end))
    return sorted(spans)


def weighted_length(text: str) -> int:
    """X's count for `text` as a post (twitter-text v3 weighting)."""
    text = unicodedata.normalize("NFC", text)
    total, position = 0, 0
    for start, end in _url_spans(text):
        total += _plain_weight(text[position:start]) + URL_LENGTH
        position = end
    return total + _plain_weight(text[position:])
