"""Who is in the sandbox workspace: three people, two channels, one bot."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Persona:
    id: str
    name: str
    role: str


PERSONAS = (
    Persona("U0ALICE", "Alice", "support team"),
    Persona("U0BOB", "Bob", "support team"),
    Persona("U0CAROL", "Carol", "on call"),
)
CASES_CHANNEL = "C0CASES"
ESCALATION_CHANNEL = "C0ESCAL"
CHANNELS = {CASES_CHANNEL: "social-care", ESCALATION_CHANNEL: "escalations"}
ONCALL = "U0CAROL"
BOT_NAME = "SocialOps"
NAMES: dict[str, str] = {p.id: p.name for p in PERSONAS} | {"UBOT": BOT_NAME} | CHANNELS


def persona(user_id: str) -> Persona | None:
    return next((p for p in PERSONAS if p.id == user_id), None)
