"""Storms: many new items that look alike within a short window, grouped into one incident.

An incident can turn one complaint into thousands of mentions in an hour. Each item is reduced to the features two
items can share (`signatures`): its hashtags (`tag:outage`), its links (`link:status.acme.com/incident/42`), the
team's keywords it contains (`kw:outage`), and near-duplicate keys (`dup:<band>:<hex>`). `StormDetector` counts,
per feature, the items seen within the window; when one feature reaches the threshold, those items become the
members of a new incident, and later items with that feature join it while it is active. Every step is a
dictionary lookup: nothing is compared pairwise against the items in the window.

Near-duplicates: MinHash over word 3-shingles with LSH bands. The text is NFKC-normalised and case-folded;
links, @mentions (and a retweet's `RT`) and hashtags are removed, every digit becomes `0` (order numbers differ
between copies of one complaint), and punctuation and spacing vanish (only `\\w+` words are kept). Texts of fewer
than `MIN_WORDS` words get no near-duplicate keys: "thank you so much" from ten customers is not an incident.
Each 3-shingle is hashed by simple tabulation (a random vector per word and position, from SHAKE-128, cached;
Pătraşcu and Thorup showed simple tabulation is good enough for MinHash), giving `LANES` 15-bit values at once in
one Python integer, and the per-lane minimum over all shingles is taken with SWAR arithmetic on those integers
(seven big-integer operations per shingle instead of one per shingle and lane). The sketch's lanes are cut into
`BANDS` bands of `ROWS` lanes: two texts of Jaccard similarity J share a band with probability
1 - (1 - J^ROWS)^BANDS (J = 0.8: 1.00, 0.6: 0.98, 0.5: 0.88, 0.4: 0.65, 0.25: 0.22, 0.1: 0.016).

SimHash was not chosen: one sentence added to a short post moves a 64-bit SimHash by 10–15 bits, more than banded
SimHash can find without also matching unrelated texts; MinHash estimates the Jaccard similarity of the shingle
sets directly, which is what "near-duplicate" means here.

A shared band only makes two texts candidates. The detector groups near-duplicates into clusters: an item joins
the cluster of the latest item it shares a band with when their sketches also agree on at least `SIMILARITY` of
all lanes (the estimated Jaccard similarity, ±0.07), otherwise it founds a cluster of its own; the cluster
(`dup:<hex>`, named after its founder's sketch) is the feature that is counted. So ten varied copies of one
complaint form one storm even when no single band is shared by all ten, and a text that shares a band by chance
(or only a common phrase) is not pulled in.

Deterministic: every hash comes from `hashlib`, never from `hash()`, so keys are the same in every process.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Literal
from urllib.parse import urlsplit

__all__ = [
    "BANDS",
    "LANES",
    "MIN_WORDS",
    "ROWS",
    "SIMILARITY",
    "TREND_MINUTES",
    "Decision",
    "IncidentInfo",
    "StormDetector",
    "feature_of",
    "near_duplicate_text",
    "signatures",
    "similarity",
]

ROWS: Final = 3
"""Lanes per LSH band."""
BANDS: Final = 16
"""LSH bands: near-duplicate keys per text."""
LANES: Final = ROWS * BANDS
"""MinHash values per text (15 bits each)."""
MIN_WORDS: Final = 5
"""Texts with fewer words (after normalisation) get no near-duplicate keys."""
SIMILARITY: Final = 0.4
"""Share of equal MinHash lanes for an item to join a near-duplicate cluster (estimated Jaccard similarity)."""
TREND_MINUTES: Final = 15
"""Length of `IncidentInfo.per_minute`."""
WORD_CACHE: Final = 16_384
"""Words whose tabulation vectors are kept (~0.5 KiB each; all forgotten at once when full)."""
LABEL_CHARS: Final = 60

Kind = Literal["none", "opened", "joined"]

# ---- text features ------------------------------------------------------------------------------------------------

_LINK = re.compile(r"(?i)(?<![\w@.])(?:https?://|www\.)[^\s<>\"'`]+")
_RETWEET = re.compile(r"\bRT\s+(?=@)")
_MENTION = re.compile(r"(?<![\w@])@[\w.-]*\w(?:@[\w.-]*\w)?")
_HASHTAG = re.compile(r"(?<![\w&#/])#([^\s#@]+)")
_WORD = re.compile(r"\w+")
_DIGIT = re.compile(r"\d")
_TRAILING = ".,;:!?'\"»”’…)]}>"
_JOINERS = frozenset("\u200c\u200d_")
_DEFAULT_PORTS = (":80", ":443")


def _tag(body: str) -> str | None:
    """The hashtag's name: the letters, digits, marks and joiners at the start of `body`; none without a letter."""
    end = 0
    letter = False
    for char in body:
        category = unicodedata.category(char)
        if category[0] == "L":
            letter = True
        elif not (category[0] in "NM" or char in _JOINERS):
            break
        end += 1
    return body[:end] if letter else None


def _link(raw: str) -> str | None:
    """`host/path` without scheme, `www.`, port 80/443, user info, query, fragment or trailing slash."""
    while raw and raw[-1] in _TRAILING:
        if raw[-1] == ")" and raw.count("(") >= raw.count(")"):
            break
        raw = raw[:-1]
    if raw[:4].lower() == "www.":
        raw = "http://" + raw
    try:
        parts = urlsplit(raw)
    except ValueError:
        return None
    host = parts.netloc.rpartition("@")[2].lower()
    for port in _DEFAULT_PORTS:
        host = host.removesuffix(port)
    host = host.removeprefix("www.")
    if not host:
        return None
    return host + parts.path.rstrip("/")


def _words(text: str) -> tuple[list[str], list[str], str]:
    """(hashtags, links, the rest): NFKC, case-folded, without links, @mentions and hashtags."""
    links: list[str] = []
    if "//" in text or "www." in text or "WWW." in text:
        links = [link for raw in _LINK.findall(text) if (link := _link(raw))]
        text = _LINK.sub(" ", text)
    if "@" in text:
        text = _MENTION.sub(" ", _RETWEET.sub(" ", text) if "RT" in text else text)
    folded = unicodedata.normalize("NFKC", text).casefold()
    tags: list[str] = []
    if "#" in folded:

        def cut(match: re.Match[str]) -> str:
            body = match.group(1)
            tag = _tag(body)
            if tag is None:
                return match.group(0)
            tags.append(tag)
            return " " + body[len(tag):]

        folded = _HASHTAG.sub(cut, folded)
    return tags, links, folded


_ASCII_WORDS = str.maketrans({**{chr(c): " " for c in range(128) if not (chr(c).isalnum() or chr(c) == "_")},
                              **dict.fromkeys("123456789", "0")})


def _tokens(rest: str) -> list[str]:
    """The `\\w+` words of the text, every digit as `0` (for ASCII text a translation, twice as fast as a regex)."""
    if rest.isascii():
        return rest.translate(_ASCII_WORDS).split()
    return _WORD.findall(_DIGIT.sub("0", rest))


def near_duplicate_text(text: str) -> str:
    """The text as near-duplicates are compared: case-folded words without links, mentions, hashtags, punctuation,
    every digit as `0`."""
    return " ".join(_tokens(_words(text)[2]))


# ---- MinHash with SWAR lanes --------------------------------------------------------------------------------------

_LANE_BYTES = 2
_BAND_BYTES = ROWS * _LANE_BYTES
_SKETCH_BYTES = LANES * _LANE_BYTES
_GUARDS = int.from_bytes(b"\x00\x80" * LANES, "little")
"""The top bit of every 16-bit lane: a guard for the SWAR arithmetic, never part of a value."""
_VALUES = int.from_bytes(b"\xff\x7f" * LANES, "little")
_ONES = int.from_bytes(b"\x01\x00" * LANES, "little")
_SHIFT = 15
_WORD_VECTORS: dict[str, tuple[int, int, int]] = {}


def _vectors(word: str) -> tuple[int, int, int]:
    """The word's random lane vectors for the first, second and third word of a shingle."""
    size = _SKETCH_BYTES
    digest = hashlib.shake_128(word.encode("utf-8", "surrogatepass")).digest(3 * size)
    vectors = (int.from_bytes(digest[:size], "little") & _VALUES,
               int.from_bytes(digest[size:2 * size], "little") & _VALUES,
               int.from_bytes(digest[2 * size:], "little") & _VALUES)
    cache = _WORD_VECTORS
    if len(cache) >= WORD_CACHE:
        cache.clear()
    cache[word] = vectors
    return vectors


def _sketch(words: list[str]) -> int | None:
    """Per-lane minimum over the word 3-shingles' tabulation hashes (`LANES` values in one integer)."""
    if len(words) < MIN_WORDS:
        return None
    cache = _WORD_VECTORS
    vectors = [cache.get(word) or _vectors(word) for word in words]
    guards, shift = _GUARDS, _SHIFT
    low = _VALUES | guards  # the guard bits stay set: lanes where low >= value keep theirs through the subtraction
    for first, second, third in zip(vectors, vectors[1:], vectors[2:], strict=False):
        value = first[0] ^ second[1] ^ third[2]
        mask = (low - value) & guards
        mask -= mask >> shift
        low ^= (low ^ value) & mask
    return low ^ guards


def _band_values(sketch: int) -> tuple[bytes, ...]:
    """The sketch cut into `BANDS` bands of `ROWS` lanes (values of different bands practically never match)."""
    raw = sketch.to_bytes(_SKETCH_BYTES, "little")
    return tuple([raw[start:start + _BAND_BYTES] for start in range(0, _SKETCH_BYTES, _BAND_BYTES)])


def _agreement(one: int, other: int) -> float:
    """Share of lanes where two sketches are equal: an estimate of the Jaccard similarity of the shingle sets."""
    differ = (((one ^ other) | _GUARDS) - _ONES) & _GUARDS
    return 1 - differ.bit_count() / LANES


def similarity(text: str, other: str) -> float:
    """Estimated Jaccard similarity of the two texts' word 3-shingles (0 when either is shorter than MIN_WORDS)."""
    one, two = (_sketch(_tokens(_words(t)[2])) for t in (text, other))
    return 0.0 if one is None or two is None else _agreement(one, two)


# ---- signatures ---------------------------------------------------------------------------------------------------

def _keyword_words(keyword: str) -> str:
    return " ".join(_tokens(unicodedata.normalize("NFKC", keyword).casefold()))


_Analysis = tuple[tuple[str, ...], tuple[bytes, ...], int | None]
"""Hashtag, link and keyword features; near-duplicate band values; the MinHash sketch."""


class _Analyser:
    def __init__(self, keywords: Iterable[str] = ()) -> None:
        phrases = {words for keyword in keywords if (words := _keyword_words(keyword))}
        self._single = frozenset(p for p in phrases if " " not in p)
        self._phrases = tuple(sorted(p for p in phrases if " " in p))

    def analyse(self, text: str) -> _Analysis:
        tags, links, rest = _words(text)
        words = _tokens(rest)
        features = [f"tag:{tag}" for tag in dict.fromkeys(tags)]
        if links:
            features += [f"link:{link}" for link in dict.fromkeys(links)]
        if self._single or self._phrases:
            found = self._single.intersection(words).union(self._single.intersection(tags))
            if self._phrases:
                padded = f" {' '.join(words)} "
                found = found.union(p for p in self._phrases if f" {p} " in padded)
            features += [f"kw:{word}" for word in sorted(found)]
        sketch = _sketch(words)
        return tuple(features), _band_values(sketch) if sketch is not None else (), sketch


_PLAIN = _Analyser()


def feature_of(entry: str) -> str:
    """A feature as a person writes it (`storms.ignore`), named exactly as the detector names it: "#Acme" →
    `tag:acme`, "https://www.Acme.com/Status/" → `link:acme.com/Status`, "App down" → `kw:app down`; an entry that
    already names a feature (`tag:`, `link:`, `kw:`, `dup:`) is taken as it is."""
    entry = entry.strip()
    kind, _, value = entry.partition(":")
    if kind in _KIND_RANK and value and not value.startswith("//"):
        return entry
    if entry.startswith("#"):
        tags = _words(entry)[0]
        if tags:
            return f"tag:{tags[0]}"
    if "." in entry or "/" in entry:
        link = _link(entry if "//" in entry or entry[:4].lower() == "www." else "http://" + entry)
        if link:
            return f"link:{link}"
    return f"kw:{_keyword_words(entry)}"


def signatures(text: str, keywords: Iterable[str] = ()) -> frozenset[str]:
    """The features two items can share: `tag:`, `link:`, `kw:` (for the given keywords) and `dup:<band>:<hex>`."""
    features, bands, _ = (_Analyser(keywords) if keywords else _PLAIN).analyse(text)
    return frozenset((*features, *(f"dup:{band}:{value.hex()}" for band, value in enumerate(bands))))


# ---- detector -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class IncidentInfo:
    key: str
    feature: str
    label: str
    """For people: `#outage`, `status.acme.com/incident/42`, `keyword “outage”`, `near-duplicates of: “…”`."""
    count: int
    platforms: Counter[str]
    first_at: datetime
    last_at: datetime
    samples: list[str]
    """The first members' texts, as written."""
    per_minute: list[int]
    """Members per UTC minute, the last `TREND_MINUTES` minutes up to the detector's clock (last: current minute)."""


@dataclass(frozen=True, slots=True)
class Decision:
    kind: Kind
    incident: str | None = None
    members: tuple[str, ...] = ()
    """For `opened`: the ids of every item of the new incident in arrival order, this one last."""
    closed: tuple[IncidentInfo, ...] = ()
    """Incidents that ended before this item (no member for a whole window), as they were at the end."""


_NONE = Decision("none")


class _Seen:
    """One item within the window."""

    __slots__ = ("at", "bands", "cluster", "features", "item_id", "order", "platform", "sketch", "taken", "text",
                 "ts")

    def __init__(self, ts: float, at: datetime, item_id: str, platform: str, text: str, bands: tuple[bytes, ...],
                 sketch: int | None) -> None:
        self.ts = ts
        self.at = at
        self.item_id = item_id
        self.platform = platform
        self.text = text
        self.bands = bands
        self.sketch = sketch
        self.cluster = ""
        """Its near-duplicate cluster (`dup:<hex>`, empty without a sketch) and that cluster's founding number."""
        self.order = 0
        self.features: tuple[str, ...] = ()
        """What it is counted under (nothing once it joined an incident)."""
        self.taken = False
        """A member of an incident: no longer counted."""


class _Bucket:
    """The items with one feature within the window, oldest first (a feature seen once is stored as its item)."""

    __slots__ = ("items", "live")

    def __init__(self, first: _Seen) -> None:
        self.items = deque((first,))
        self.live = 0 if first.taken else 1
        """Items not taken by an incident."""


@dataclass(slots=True, eq=False)
class _Incident:
    key: str
    feature: str
    order: int
    count: int = 0
    platforms: Counter[str] = field(default_factory=Counter)
    first: datetime = datetime.min
    last: datetime = datetime.min
    last_ts: float = 0.0
    samples: list[str] = field(default_factory=list)
    minutes: dict[int, int] = field(default_factory=dict)


_KIND_RANK = {"tag": 0, "link": 1, "dup": 2, "kw": 3}


class StormDetector:
    """Groups items that look alike within `window` into incidents once `threshold` of them share a feature.

    `at` is when the bot received the item (timezone-aware). Time never goes back: an item older than the latest
    one counts as arriving at the latest time, so a late delivery cannot reopen the past.

    The window is inclusive: with `threshold=10, window=15m`, ten items within 15 minutes (the first exactly 15:00
    before the tenth) open an incident, and an incident ends once no member arrived for more than `window`. Its key
    is `<feature>@<opening time, UTC>`: a new burst of the same hashtag after an incident ended opens a new incident
    under a new key (a new card), so a key is never reused.

    An item belongs to one incident: members are no longer counted under their other features. When features reach
    the threshold together, the incident forms around the one with most items (ties: hashtag, link,
    near-duplicates, keyword). `ignore` lists features never counted (the brand's own hashtag or site, e.g.
    `tag:acme`, `link:acme.com`).

    Memory: the items of the last `window` and, per feature, a deque of them; incidents until they end.
    """

    def __init__(self, threshold: int, window: timedelta, max_samples: int = 3, *, keywords: Iterable[str] = (),
                 ignore: Iterable[str] = ()) -> None:
        if threshold < 2:
            raise ValueError("storms: threshold must be at least 2")
        if window < timedelta(seconds=1):
            raise ValueError("storms: window must be at least one second")
        self.threshold = threshold
        self.window = window
        self.max_samples = max_samples
        self._window = window.total_seconds()
        self._analyser = _Analyser(keywords)
        self._ignore = frozenset(ignore)
        self._ts = float("-inf")
        self._now = datetime.min.replace(tzinfo=UTC)
        self._order = 0
        self._timeline: deque[_Seen] = deque()
        self._buckets: dict[str, _Seen | _Bucket] = {}
        self._bands: dict[bytes, _Seen] = {}
        """Band value → the latest item with it (the entry is forgotten with that item)."""
        self._incidents: dict[str, _Incident] = {}
        self._owner: dict[str, _Incident] = {}

    # ---- public ---------------------------------------------------------------------------------------------------

    def observe(self, item_id: str, text: str, platform: str, at: datetime) -> Decision:
        """Record one new item and say whether it opened an incident, joined one, or neither."""
        closed = self._advance(at)
        features, bands, sketch = self._analyser.analyse(text)
        seen = _Seen(self._ts, self._now, item_id, platform, text, bands, sketch)
        if self._ignore:
            features = tuple(f for f in features if f not in self._ignore)
        if sketch is not None:
            self._cluster(seen, sketch)
            if seen.cluster not in self._ignore:
                features = (*features, seen.cluster)
        self._timeline.append(seen)
        incident: _Incident | None = None
        owners = self._owner
        if owners:
            for feature in features:
                owner = owners.get(feature)
                if owner is not None and (incident is None or owner.order < incident.order):
                    incident = owner
        if incident is not None:
            seen.taken = True
            self._add(incident, seen)
            return Decision("joined", incident.key, closed=closed)
        seen.features = features
        best: tuple[int, int, str] | None = None
        buckets = self._buckets
        for feature in features:
            entry = buckets.get(feature)
            if entry is None:
                buckets[feature] = seen
                continue
            if isinstance(entry, _Seen):
                entry = buckets[feature] = _Bucket(entry)
            entry.items.append(seen)
            entry.live += 1
            if entry.live >= self.threshold:
                rank = (-entry.live, _KIND_RANK[feature.partition(":")[0]], feature)
                if best is None or rank < best:
                    best = rank
        if best is None:
            return Decision("none", closed=closed) if closed else _NONE
        opened, members = self._open(best[2])
        return Decision("opened", opened.key, tuple(s.item_id for s in members), closed)

    def sweep(self, at: datetime) -> list[IncidentInfo]:
        """Let time pass without items: forget what left the window; the incidents that ended."""
        return list(self._advance(at))

    def incident(self, key: str) -> IncidentInfo | None:
        """An open incident as it is now (None once it ended)."""
        incident = self._incidents.get(key)
        return None if incident is None else self._info(incident)

    def incidents(self) -> list[IncidentInfo]:
        """The open incidents, oldest first."""
        return [self._info(incident) for incident in self._incidents.values()]

    # ---- time -----------------------------------------------------------------------------------------------------

    def _advance(self, at: datetime) -> tuple[IncidentInfo, ...]:
        if at.tzinfo is None:
            raise ValueError("storms: times must be timezone-aware")
        ts = at.timestamp()
        if ts > self._ts:
            self._ts, self._now = ts, at.astimezone(UTC)
        horizon = self._ts - self._window
        timeline, buckets, bands = self._timeline, self._buckets, self._bands
        while timeline and timeline[0].ts < horizon:
            old = timeline.popleft()
            for feature in old.features:
                entry = buckets[feature]
                if entry is old:
                    del buckets[feature]
                    continue
                assert isinstance(entry, _Bucket)
                entry.items.popleft()
                if not old.taken:
                    entry.live -= 1
                if not entry.items:
                    del buckets[feature]
            for band in old.bands:
                if bands.get(band) is old:
                    del bands[band]
        if not self._incidents:
            return ()
        closed: list[IncidentInfo] = []
        for incident in [i for i in self._incidents.values() if i.last_ts < horizon]:
            closed.append(self._info(incident))
            del self._incidents[incident.key]
            if self._owner.get(incident.feature) is incident:
                del self._owner[incident.feature]
        return tuple(closed)

    # ---- near-duplicate clusters ----------------------------------------------------------------------------------

    def _cluster(self, seen: _Seen, sketch: int) -> None:
        """Put the item in the cluster of an earlier item it shares a band with and resembles, else in a new one."""
        bands = self._bands
        best: _Seen | None = None
        checked: list[_Seen] = []
        for band in seen.bands:
            other = bands.get(band)
            if other is None or other in checked:
                continue
            checked.append(other)
            if (best is None or other.order < best.order) and _agreement(sketch, other.sketch or 0) >= SIMILARITY:
                best = other
        if best is not None:
            seen.cluster, seen.order = best.cluster, best.order
        else:
            self._order += 1
            digest = hashlib.blake2b(sketch.to_bytes(_SKETCH_BYTES, "little"), digest_size=8).hexdigest()
            seen.cluster, seen.order = f"dup:{digest}", self._order
        for band in seen.bands:
            bands[band] = seen

    # ---- incidents ------------------------------------------------------------------------------------------------

    def _open(self, feature: str) -> tuple[_Incident, list[_Seen]]:
        self._order += 1
        incident = _Incident(f"{feature}@{self._now:%Y%m%dT%H%M%SZ}", feature, self._order)
        bucket = self._buckets[feature]
        assert isinstance(bucket, _Bucket)
        members = [s for s in bucket.items if not s.taken]
        incident.first = members[0].at
        for seen in members:
            seen.taken = True
            for other in seen.features:
                entry = self._buckets[other]
                if isinstance(entry, _Bucket):
                    entry.live -= 1
            self._add(incident, seen)
        self._incidents[incident.key] = incident
        self._owner[feature] = incident
        return incident, members

    def _add(self, incident: _Incident, seen: _Seen) -> None:
        incident.count += 1
        incident.platforms[seen.platform] += 1
        incident.last, incident.last_ts = seen.at, seen.ts
        if len(incident.samples) < self.max_samples:
            incident.samples.append(seen.text)
        minute = int(seen.ts // 60)
        minutes = incident.minutes
        if minute not in minutes:
            for old in [m for m in minutes if m <= minute - TREND_MINUTES]:
                del minutes[old]
            minutes[minute] = 0
        minutes[minute] += 1

    def _info(self, incident: _Incident) -> IncidentInfo:
        current = int(self._ts // 60)
        trend = [incident.minutes.get(current - TREND_MINUTES + 1 + i, 0) for i in range(TREND_MINUTES)]
        return IncidentInfo(incident.key, incident.feature, _label(incident), incident.count,
                            Counter(incident.platforms), incident.first, incident.last, list(incident.samples), trend)


def _label(incident: _Incident) -> str:
    kind, _, value = incident.feature.partition(":")
    if kind == "tag":
        return f"#{value}"
    if kind == "link":
        return value
    if kind == "kw":
        return f"keyword “{value}”"
    text = near_duplicate_text(incident.samples[0]) if incident.samples else ""
    if len(text) > LABEL_CHARS:
        text = text[:LABEL_CHARS - 1].rstrip() + "…"
    return f"near-duplicates of: “{text}”"
