"""Triage: a case's priority (urgent, high, normal, low) from what the customer wrote and who they are, with the
reasons a person reads on the card."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

PRIORITIES = ("urgent", "high", "normal", "low")
NAMES = {"urgent": "Urgent", "high": "High", "normal": "Normal", "low": "Low"}
REPEAT_WINDOW_DAYS = 30
"""A customer who opened another case within this many days is a repeat contact."""


def rank(priority: str) -> int:
    """0 for urgent … 3 for low (unknown: normal)."""
    return PRIORITIES.index(priority) if priority in PRIORITIES else PRIORITIES.index("normal")


@dataclass(frozen=True, slots=True)
class Signals:
    kind: str
    text: str
    handle: str = ""
    followers: int | None = None
    rating: int | None = None
    repeat: bool = False


@dataclass(frozen=True, slots=True)
class Triage:
    priority: str
    reasons: tuple[str, ...]


def _phrase(words: str) -> str:
    return r"\s+".join(re.escape(part) for part in words.casefold().split())


class Rules:
    """The team's triage rules, compiled once: VIPs, complaint words per language.

    Points: VIP 2, complaint words 2, a review of 1–2 stars 2, a repeat contact 1, a DM 1. Four or more: urgent;
    two or three: high; a review of 4–5 stars with nothing else: low; otherwise normal."""

    def __init__(self, *, vip_handles: Iterable[str] = (), vip_followers: int | None = None,
                 complaint_words: Mapping[str, Sequence[str]] | None = None) -> None:
        self._vips = frozenset(h.strip().lstrip("@").casefold() for h in vip_handles if h.strip().lstrip("@"))
        self._followers = vip_followers
        self._complaints: list[tuple[str, re.Pattern[str]]] = []
        for language, words in (complaint_words or {}).items():
            phrases = sorted({_phrase(w) for w in words if w.strip()}, key=len, reverse=True)
            if phrases:
                self._complaints.append((language, re.compile(r"(?<!\w)(" + "|".join(phrases) + r")(?!\w)")))

    def complaint(self, text: str) -> tuple[str, str] | None:
        """(language, the words found) when the text has a complaint word of some language."""
        folded = text.casefold()
        for language, pattern in self._complaints:
            found = pattern.search(folded)
            if found:
                return language, " ".join(found.group(1).split())
        return None

    def triage(self, signals: Signals) -> Triage:
        points = 0
        reasons: list[str] = []
        handle = signals.handle.strip().lstrip("@").casefold()
        if handle and (handle in self._vips or handle.split("@")[0] in self._vips):
            points += 2
            reasons.append(f"VIP (@{signals.handle.strip().lstrip('@')})")
        elif self._followers is not None and (signals.followers or 0) >= self._followers:
            points += 2
            reasons.append(f"{signals.followers:,} followers")
        complaint = self.complaint(signals.text)
        if complaint is not None:
            points += 2
            reasons.append(f"complaint ({complaint[0]}: “{complaint[1]}”)")
        if signals.rating is not None and signals.rating <= 2:
            points += 2
            reasons.append(f"{signals.rating}-star review")
        if signals.repeat:
            points += 1
            reasons.append("repeat contact")
        if signals.kind == "dm":
            points += 1
            reasons.append("direct message")
        if points >= 4:
            return Triage("urgent", tuple(reasons))
        if points >= 2:
            return Triage("high", tuple(reasons))
        if points == 0 and signals.rating is not None and signals.rating >= 4:
            return Triage("low", (f"{signals.rating}-star review",))
        return Triage("normal", tuple(reasons))
