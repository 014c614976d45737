"""Adaptive Cards for the Teams desk, rendered from the same neutral case view as Slack's Block Kit.

Customer text only ever goes into `TextRun`s of a `RichTextBlock`, which Teams shows as literal text (no
markdown, no links, no mentions), so nothing a customer writes can format, link or ping. Buttons are
Universal Actions (`Action.Execute`) whose verbs are the action ids of bot/chat/names.py, as in Slack. A Teams
message may carry about 100 KB: text is cut long before that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.chat.names import (
    ACKNOWLEDGE,
    CHECKIN_SEND,
    CHECKIN_SKIP,
    CLAIM,
    ESCALATE,
    PRIORITY,
    RELEASE,
    REOPEN,
    REPLY,
    REPLY_ALL,
    RESOLVE,
    RESOLVE_ALL,
    RETRY,
    SPLIT,
    TAKE_OVER,
    duration,
    kind_name,
    period_name,
    platform_name,
)
from bot.core.view import CaseView, IncidentView, MemberView, StatsView

Card = dict[str, Any]

SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.5"
TEXT_LIMIT = 3000
"""Characters of the customer's message shown on the card (the card links to the whole message)."""
MAX_CARD_BYTES = 100_000
"""Teams refuses messages over about 100 KB."""

PRIORITY_NAMES = {"urgent": "🔴 Urgent", "high": "🟠 High", "normal": "⚪ Normal", "low": "🔵 Low"}
STATUS_NAMES = {"open": "🔵 Open", "claimed": "🟡 Claimed", "resolved": "✅ Resolved"}
_BUTTONS = {
    "claim": ("Claim", CLAIM, "positive"), "release": ("Release", RELEASE, None),
    "reply": ("Reply", REPLY, None), "escalate": ("Escalate", ESCALATE, "destructive"),
    "resolve": ("Resolve", RESOLVE, None), "reopen": ("Reopen", REOPEN, None),
}
_CONTROL = {chr(c) for c in range(32)} - {"\n", "\t"}


def literal(text: str, limit: int = TEXT_LIMIT) -> str:
    """Untrusted text for a TextRun: control characters dropped, cut to `limit` with an ellipsis."""
    text = "".join(ch for ch in text if ch not in _CONTROL)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextRun", "text": text, **style}


def rich(*runs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "RichTextBlock", "inlines": list(runs), **extra}


def _date(moment: datetime) -> str:
    """Teams formats {{DATE()}} and {{TIME()}} in the reader's own locale and time zone."""
    stamp = moment.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment.tzinfo is None \
        else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{{{{DATE({stamp}, SHORT)}}}} {{{{TIME({stamp})}}}}"


def _action(title: str, verb: str, case_id: int, style: str | None = None, **data: Any) -> dict[str, Any]:
    action: dict[str, Any] = {"type": "Action.Execute", "title": title, "verb": verb,
                              "data": {"case": case_id, **data}}
    if style:
        action["style"] = style
    return action


@dataclass(frozen=True)
class Forms:
    """What the Reply, Escalate and Resolve forms inside a card need (they open in the reader's own client, as
    `Action.ShowCard`, so what one person types is never shown to the others nor lost to a card update)."""

    greeting: str
    saved: list[tuple[str, str]]
    """(title, text personalised for this customer)"""
    max_length: int
    prefix: str
    notice: str | None = None
    modes: list[tuple[str, str]] = field(default_factory=list)
    refusal: str | None = None
    """The platform does not allow a reply now (Reply then answers why instead of opening a form)."""


def case_card(view: CaseView, forms: Forms | None = None) -> Card:
    platform = platform_name(view.platform)
    title = f"{platform} {kind_name(view.kind)} · case #{view.id}"
    if view.rating is not None:
        stars = max(0, min(5, view.rating))
        title += f" · {'★' * stars}{'☆' * (5 - stars)}"
    badges = []
    if view.escalated:
        badges.append("🚨 Escalated")
    if view.reopened and view.status != "resolved":
        badges.append("↩️ Reopened")
    who = [run(literal(view.customer_name or "Someone", 200), weight="Bolder")]
    details = []
    if view.customer_handle:
        details.append(literal(view.customer_handle, 200))
    if view.customer_followers is not None:
        details.append(f"{view.customer_followers:,} followers")
    if details:
        who.append(run(f" ({' · '.join(details)})", isSubtle=True))
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": title + ("  " + "  ".join(badges) if badges else ""), "weight": "Bolder",
         "size": "Medium", "wrap": True},
        rich(*who),
        {"type": "Container", "style": "emphasis", "items": [rich(run(literal(view.text)))]},
        {"type": "FactSet", "facts": [
            {"title": "Status", "value": STATUS_NAMES.get(view.status, view.status)},
            {"title": "Owner", "value": literal(view.owner_name or view.owner or "nobody", 200)},
            {"title": "Opened", "value": _date(view.opened_at)},
            {"title": "Messages", "value": str(view.messages)},
            {"title": "Priority", "value": PRIORITY_NAMES.get(view.priority, view.priority)},
            *([{"title": "Reply due", "value": _date(view.due_at) + {"warning": " · ⚠️ due soon",
                                                                   "breached": " · 🔴 target missed"}.get(
                view.sla_state, "")}] if view.due_at is not None and view.status != "resolved" else []),
        ]},
    ]
    notes: list[list[dict[str, Any]]] = []
    if view.priority_reasons or view.priority_by:
        by = f" (set by {literal(view.priority_by, 200)})" if view.priority_by else ""
        notes.append([run(f"Why {view.priority}{by}: ", weight="Bolder"),
                      run(literal(", ".join(view.priority_reasons), 400))])
    if view.escalated and view.escalation_reason:
        notes.append([run(f"🚨 Escalated by {literal(view.escalated_by or 'someone', 200)}: "),
                      run(literal(view.escalation_reason, 500))])
    reply = view.last_reply
    if reply is not None:
        what = {"checkin": "Check-in", "away": "Away message"}.get(reply.kind, "Reply")
        by = f" by {literal(reply.author_name, 200)}" if reply.author_name else ""
        if reply.status == "queued":
            notes.append([run(f"⏳ {what}{by} sending…")])
        elif reply.status == "sent":
            notes.append([run(f"✅ {what}{by} sent")])
        else:
            notes.append([run(f"❌ {what}{by} failed: "), run(literal(reply.error or "unknown error", 500))])
    if view.status == "resolved" and view.resolution_note:
        notes.append([run("📝 "), run(literal(view.resolution_note, 500))])
    if view.incident_id is not None:
        label = f": {literal(view.incident_label, 200)}" if view.incident_label else ""
        notes.append([run(f"🌀 Part of incident #{view.incident_id}{label}"),
                      run(" (answered from the incident card; Split makes it a case of its own again)",
                          isSubtle=True)])
    if view.acked_name and view.escalated:
        notes.append([run(f"✋ Escalation acknowledged by {literal(view.acked_name, 200)}")])
    elif view.awaiting_ack:
        notes.append([run(f"🚨 Paged (level {view.page_level}), not acknowledged yet")])
    for note in notes:
        body.append(rich(*note, spacing="Small"))
    actions = [_button(view, name, forms) for name in _BUTTONS if name in view.actions]
    if view.awaiting_ack:
        actions.insert(0, _action("Acknowledge", ACKNOWLEDGE, view.id, "positive"))
    if forms is not None and view.status != "resolved":
        actions.append({"type": "Action.ShowCard", "title": "Priority", "card": {"type": "AdaptiveCard", "body": [
            {"type": "Input.ChoiceSet", "id": PRIORITY_INPUT, "label": "Priority (the owner sets it)",
             "style": "expanded", "value": view.priority,
             "choices": [{"title": title, "value": value} for value, title in PRIORITY_NAMES.items()]}],
            "actions": [_action("Set priority", PRIORITY, view.id)]}})
    if "retry" in view.actions and view.last_reply is not None:
        actions.append(_action("Retry", RETRY, view.id, "positive", reply=view.last_reply.id))
    if "split" in view.actions:
        actions.append(_action("Split", SPLIT, view.id))
    if view.url and view.url.startswith("https://"):
        actions.append({"type": "Action.OpenUrl", "title": f"View on {platform}", "url": view.url})
    return {"type": "AdaptiveCard", "$schema": SCHEMA, "version": VERSION, "body": body, "actions": actions,
            "msteams": {"width": "Full"}}


SEND_REPLY = "reply.send"
SEND_SAVED = "reply.send_saved"
SEND_ESCALATION = "escalate.send"
SEND_RESOLVE = "resolve.send"
"""Verbs of the forms inside the card (Reply, Escalate, Resolve open as Action.ShowCard in the reader's client)."""
TEXT_INPUT, MODE_INPUT, SAVED_INPUT, REASON_INPUT, NOTE_INPUT = "text", "mode", "saved", "reason", "note"
PRIORITY_INPUT = "priority"


def _button(view: CaseView, name: str, forms: Forms | None) -> dict[str, Any]:
    title, verb, style = _BUTTONS[name]
    if name == "claim" and view.owner:
        return _action("Take over", TAKE_OVER, view.id, "destructive")  # who owns it is on the card
    if forms is None or name not in ("reply", "escalate", "resolve") or (name == "reply" and forms.refusal):
        return _action(title, verb, view.id, style)
    if name == "reply":
        items, actions = _reply_inputs(view, forms)
    elif name == "escalate":
        items, actions = _escalate_inputs(view)
    else:
        items, actions = _resolve_inputs(view)
    return {"type": "Action.ShowCard", "title": title, "card": {"type": "AdaptiveCard", "body": items,
                                                                 "actions": actions}}


def _reply_inputs(view: CaseView, forms: Forms, problem: str | None = None, text: str | None = None
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    items: list[dict[str, Any]] = []
    if problem:
        items.append(_banner(problem, "Attention"))
    if forms.notice:
        items.append(rich(run("ℹ️ " + literal(forms.notice, 1000)), spacing="Small"))
    hint = f"Up to {forms.max_length} characters."
    if forms.prefix.strip():
        hint = f"Sent as a reply starting with {literal(forms.prefix.strip(), 200)} · " + hint
    items.append({"type": "Input.Text", "id": TEXT_INPUT, "label": f"Reply on {platform_name(view.platform)}",
                  "isMultiline": True, "value": literal(forms.greeting if text is None else text, forms.max_length),
                  "maxLength": forms.max_length, "isRequired": True, "errorMessage": "Write the reply first."})
    items.append({"type": "TextBlock", "text": hint, "isSubtle": True, "size": "Small", "wrap": True,
                  "spacing": "None"})
    if forms.modes:
        items.append({"type": "Input.ChoiceSet", "id": MODE_INPUT, "label": "How", "style": "expanded",
                      "value": forms.modes[0][0], "choices": [{"title": literal(label, 200), "value": value}
                                                               for value, label in forms.modes[:10]]})
    actions = [_action("Send", SEND_REPLY, view.id, "positive")]
    if forms.saved:
        items.append({"type": "Input.ChoiceSet", "id": SAVED_INPUT, "label": "Or a saved reply", "style": "compact",
                      "placeholder": "Choose a saved reply", "choices": [
                          {"title": literal(f"{title}: {text}", 150), "value": str(i)}
                          for i, (title, text) in enumerate(forms.saved[:100])]})
        actions.append(_action("Send saved reply", SEND_SAVED, view.id))
    return items, actions


def _escalate_inputs(view: CaseView) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return ([{"type": "Input.Text", "id": REASON_INPUT, "label": "Why does this need escalating?",
              "isMultiline": True, "maxLength": 1000, "isRequired": True, "errorMessage": "Say why."}],
            [_action("Escalate now", SEND_ESCALATION, view.id, "destructive")])


def _resolve_inputs(view: CaseView) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return ([{"type": "Input.Text", "id": NOTE_INPUT, "label": "Note (optional)", "isMultiline": True,
              "maxLength": 1000}],
            [_action("Mark resolved", SEND_RESOLVE, view.id, "positive")])


def _banner(text: str, color: str) -> dict[str, Any]:
    return {"type": "Container", "style": "warning" if color == "Warning" else "attention"
            if color == "Attention" else "good", "items": [rich(run(literal(text, 1000), color=color))]}


def _dialog(view: CaseView, title: str, items: list[dict[str, Any]], actions: list[dict[str, Any]]) -> Card:
    """A form on its own (a dialog, or an answer for a client without ShowCard): the case in one line, then the
    inputs."""
    customer = literal(view.customer_name or view.customer_handle or "someone", 200)
    head: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": f"{title} · case #{view.id}", "weight": "Bolder", "wrap": True},
        rich(run(f"{customer}: ", weight="Bolder"), run(literal(view.text, 500))),
    ]
    return {"type": "AdaptiveCard", "$schema": SCHEMA, "version": VERSION, "body": head + items, "actions": actions}


def reply_form(view: CaseView, forms: Forms, *, text: str | None = None, problem: str | None = None) -> Card:
    items, actions = _reply_inputs(view, forms, problem, text)
    return _dialog(view, f"Reply on {platform_name(view.platform)}", items, actions)


def escalate_form(view: CaseView) -> Card:
    return _dialog(view, "Escalate", *_escalate_inputs(view))


def resolve_form(view: CaseView) -> Card:
    return _dialog(view, "Resolve", *_resolve_inputs(view))


def _card(*body: dict[str, Any], actions: list[dict[str, Any]] | None = None) -> Card:
    card: Card = {"type": "AdaptiveCard", "$schema": SCHEMA, "version": VERSION, "body": list(body)}
    if actions:
        card["actions"] = actions
    return card


def thread_card(text: str, quoted: str | None = None, url: str | None = None) -> Card:
    """A line of the case's history in the card's thread; quoted customer text stays literal."""
    items: list[dict[str, Any]] = [rich(run(literal(text)))]
    if quoted:
        items.append({"type": "Container", "style": "emphasis", "items": [rich(run(literal(quoted)))]})
    actions = [{"type": "Action.OpenUrl", "title": "Open", "url": url}] if url and url.startswith("https://") else None
    return _card(*items, actions=actions)


def prompt_card(followup_id: int, case_id: int, status: str, text: str, customer: str,
                acted_by: str | None) -> Card:
    body: list[dict[str, Any]] = [
        rich(run("Check-in due", weight="Bolder"), run(f" for {literal(customer, 200)}:")),
        {"type": "Container", "style": "emphasis", "items": [rich(run(literal(text)))]},
    ]
    if status == "prompted":
        return _card(*body, actions=[
            _action("Send check-in", CHECKIN_SEND, case_id, "positive", followup=followup_id),
            _action("Skip", CHECKIN_SKIP, case_id, followup=followup_id)])
    who = literal(acted_by or "someone", 200)
    outcome = {"sent": f"✅ Check-in sent by {who}.", "skipped": f"⏩ Skipped by {who}.",
               "cancelled": "🚫 Not needed any more: the case was reopened."}
    body.append(rich(run(outcome.get(status, status)), spacing="Small"))
    return _card(*body)


def escalation_card(view: CaseView, *, reason: str, by: str, oncall: str | None, oncall_name: str
                    ) -> tuple[Card, list[dict[str, Any]]]:
    """The escalation announcement and its mention entities (Teams pings whoever a `<at>` names)."""
    lead: list[dict[str, Any]] = []
    entities: list[dict[str, Any]] = []
    if oncall:
        name = literal(oncall_name, 100)
        lead.append({"type": "TextBlock", "text": f"<at>{name}</at>", "wrap": True})
        entities.append({"type": "mention", "text": f"<at>{name}</at>", "mentioned": {"id": oncall, "name": name}})
    customer = literal(view.customer_name or view.customer_handle or "someone", 200)
    body = [
        *lead,
        rich(run(f"🚨 Case #{view.id} escalated", weight="Bolder"), run(f" by {literal(by, 200)}: "),
             run(f"{platform_name(view.platform)} {kind_name(view.kind)} from {customer}")),
        {"type": "Container", "style": "attention", "items": [rich(run(literal(reason, 1500)))]},
    ]
    card = _card(*body)
    if entities:
        card["msteams"] = {"entities": entities}
    return card, entities


def mention_card(user: str, name: str, text: str) -> Card:
    """A note for one person, mentioning them so Teams tells them."""
    shown = literal(name, 100)
    card = _card(rich(run(literal(text, 2000))))
    card["body"].insert(0, {"type": "TextBlock", "text": f"<at>{shown}</at>", "wrap": True})
    card["msteams"] = {"entities": [{"type": "mention", "text": f"<at>{shown}</at>",
                                     "mentioned": {"id": user, "name": shown}}]}
    return card


def page_card(view: CaseView, *, level: int, mentions: list[tuple[str, str]], reminder: bool, minutes: int
              ) -> Card:
    """A page of the escalation policy in Teams: who is mentioned, how long the escalation waits, Acknowledge."""
    body: list[dict[str, Any]] = []
    entities = []
    if mentions:
        body.append({"type": "TextBlock", "text": " ".join(f"<at>{literal(name, 100)}</at>" for _, name in mentions),
                     "wrap": True})
        entities = [{"type": "mention", "text": f"<at>{literal(name, 100)}</at>",
                     "mentioned": {"id": who, "name": literal(name, 100)}} for who, name in mentions]
    waited = f"{minutes} min ago" if minutes else "just now"
    customer = literal(view.customer_name or view.customer_handle or "someone", 200)
    body.append(rich(run(f"🚨 Level {level}{' (reminder)' if reminder else ''}", weight="Bolder"),
                     run(f" · case #{view.id} escalated {waited}, not acknowledged yet: "
                         f"{platform_name(view.platform)} {kind_name(view.kind)} from {customer}")))
    if view.escalation_reason:
        body.append({"type": "Container", "style": "attention",
                     "items": [rich(run(literal(view.escalation_reason, 1000)))]})
    card = _card(*body, actions=[_action("Acknowledge", ACKNOWLEDGE, view.id, "positive")])
    if entities:
        card["msteams"] = {"entities": entities}
    return card


def notice_card(text: str) -> Card:
    return _card(rich(run("⚠️ SocialOps needs an admin", weight="Bolder")), rich(run(literal(text, 2000))))


def stats_card(view: StatsView) -> Card:
    """The same numbers as Slack's /social stats."""
    label = period_name(view.period)
    rate = "–" if view.response_rate is None else f"{view.response_rate:.0%}"
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": f"SocialOps stats · {label}", "weight": "Bolder", "size": "Medium"},
        {"type": "TextBlock", "wrap": True,
         "text": f"{view.new} new · {view.resolved} resolved · {view.escalated} escalated"},
        {"type": "TextBlock", "wrap": True, "isSubtle": True,
         "text": f"Now: {view.open_now} open · {view.claimed_now} claimed"},
        {"type": "FactSet", "facts": [
            {"title": "First response (median)", "value": duration(view.first_response_median_s)},
            {"title": "First response (p90)", "value": duration(view.first_response_p90_s)},
            {"title": "Resolution (median)", "value": duration(view.resolution_median_s)},
            {"title": "Response rate", "value": rate},
            {"title": "Within target", "value": "–" if view.within_target is None else f"{view.within_target:.0%}"},
            {"title": "Targets missed",
             "value": ", ".join(f"{n} {p}" for p, n in view.missed_by_priority) or "none"},
            {"title": "Escalations acknowledged",
             "value": str(view.acks) + (f" · median {duration(view.ack_median_s)}" if view.acks else "")},
        ]},
    ]
    if view.by_platform_kind:
        body.append({"type": "TextBlock", "text": "New by platform and kind", "weight": "Bolder"})
        body.append({"type": "FactSet", "facts": [
            {"title": f"{platform_name(p)} {kind_name(k)}", "value": str(n)}
            for p, k, n in view.by_platform_kind[:30]]})
    if view.per_person:
        body.append({"type": "TextBlock", "text": "People", "weight": "Bolder"})
        body.append({"type": "FactSet", "facts": [
            {"title": literal(name or uid, 100), "value": f"{claims} claimed · {replies} replies · {resolves} resolved"}
            for uid, name, claims, replies, resolves in view.per_person[:20]]})
    if view.incidents:
        body.append({"type": "TextBlock", "text": "Incidents (storms)", "weight": "Bolder"})
        body += [rich(run(literal(label, 100)), run(f": {count:,} members ({status})"))  # labels quote customers
                 for label, count, status in view.incidents]
    return _card(*body)


def text_card(text: str) -> Card:
    """A plain answer (help, whoami, a refusal) as literal text."""
    return _card(rich(run(literal(text, 3000))))



# ---- incidents (storms) ---------------------------------------------------------------------------------------------

MAX_DIGEST_BYTES = 26_000
"""An incident card or a members digest stays under this (Teams shows an Adaptive Card of up to about 28 KB),
measured as JSON with non-ASCII escaped, the largest way it can travel."""
TEMPLATE_INPUT, STATEMENT_INPUT = "template", "statement"
"""Inputs of the Reply to all form inside the incident card (the note of Resolve all is NOTE_INPUT)."""
TEMPLATE_MAX = 2000
SPARKS = "▁▂▃▄▅▆▇█"
STATEMENT_STATES = {"sent": "✅ posted", "failed": "❌ failed", "queued": "⏳ posting…"}


def sparkline(per_minute: list[int]) -> str:
    """New members per minute as text (renders in every Teams client, and the value is never customer text)."""
    top = max(per_minute, default=0)
    if top == 0:
        return SPARKS[0] * len(per_minute)
    return "".join(SPARKS[min(len(SPARKS) - 1, (n * (len(SPARKS) - 1) + top - 1) // top)] for n in per_minute)


def _incident_action(title: str, verb: str, incident_id: int, style: str | None = None) -> dict[str, Any]:
    action: dict[str, Any] = {"type": "Action.Execute", "title": title, "verb": verb,
                              "data": {"incident": incident_id}}
    if style:
        action["style"] = style
    return action


def incident_card(view: IncidentView) -> Card:
    """One card for a storm of alike messages: what it is about, how big and how fast, samples, what was done.

    The label is derived from customer text, so like every customer text it only goes into TextRuns. Texts are cut
    shorter if the card would not fit Teams' card size (three samples of emoji-laden text might not)."""
    card = _incident_card(view, 1.0)
    for scale in (0.5, 0.2):
        if len(json.dumps(card).encode()) <= MAX_DIGEST_BYTES:
            break
        card = _incident_card(view, scale)
    return card


def _incident_card(view: IncidentView, scale: float) -> Card:
    def cut(text: str, limit: int) -> str:
        return literal(text, max(20, int(limit * scale)))

    resolved = view.status == "resolved"
    title = rich(run(f"🌀 Incident #{view.id}: ", weight="Bolder", size="Medium"),
                 run(cut(view.label, 200), weight="Bolder", size="Medium"))
    if resolved:
        who = literal(view.resolved_name or "someone", 200)
        when = f" on {_date(view.resolved_at)}" if view.resolved_at else ""
        status = f"✅ Resolved by {who}{when}"
    else:
        status = STATUS_NAMES["open"]
    platforms = " · ".join(f"{platform_name(p)} {n:,}" for p, n in view.platforms[:8]) or "–"
    body: list[dict[str, Any]] = [
        title,
        {"type": "TextBlock", "wrap": True, "isSubtle": True, "spacing": "None",
         "text": f"{view.count:,} alike messages grouped into one incident; the members are listed in this "
                 "card's thread."},
        {"type": "FactSet", "facts": [
            {"title": "Status", "value": status},
            {"title": "Members", "value": f"{view.count:,}"},
            {"title": "Platforms", "value": platforms},
            {"title": "Trend (15 min)",
             "value": f"{sparkline(view.per_minute)} · {sum(view.per_minute[-5:]):,} in the last 5 min"},
            {"title": "First", "value": _date(view.first_at)},
            {"title": "Latest", "value": _date(view.last_at)},
        ]},
    ]
    if view.samples:
        body.append({"type": "TextBlock", "text": "Samples", "weight": "Bolder", "spacing": "Small"})
        body.append({"type": "Container", "style": "emphasis", "spacing": "None", "items": [
            rich(run(cut(sample, 300)), separator=index > 0) for index, sample in enumerate(view.samples[:3])]})
    notes: list[list[dict[str, Any]]] = []
    if view.reply_text is not None:
        by = f" · replied to all by {literal(view.reply_name, 200)}" if view.reply_name else ""
        notes.append([run(f"📤 Replies: {view.replies_sent:,} sent · {view.replies_failed:,} failed · "
                          f"{view.replies_queued:,} queued", weight="Bolder"), run(by)])
        notes.append([run("Personal reply: ", isSubtle=True), run(cut(view.reply_text, 500))])
    for platform, state, _ in view.statements:
        notes.append([run(f"📣 Public statement on {platform_name(platform)}: {STATEMENT_STATES.get(state, state)}")])
    if view.statement and view.statements:
        notes.append([run("Statement: ", isSubtle=True), run(cut(view.statement, 500))])
    if resolved and view.note:
        notes.append([run("📝 "), run(cut(view.note, 500))])
    for note in notes:
        body.append(rich(*note, spacing="Small"))
    actions: list[dict[str, Any]] = []
    if not resolved and "reply_all" in view.actions:
        actions.append({"type": "Action.ShowCard", "title": "Reply to all", "card": {
            "type": "AdaptiveCard", "body": _reply_all_inputs(view),
            "actions": [_incident_action("Send to all", REPLY_ALL, view.id, "positive")]}})
    if not resolved and "resolve_all" in view.actions:
        actions.append({"type": "Action.ShowCard", "title": "Resolve all", "card": {
            "type": "AdaptiveCard", "body": [
                {"type": "TextBlock", "wrap": True, "text": f"Resolves incident #{view.id} and every open member "
                                                            "(check-ins are sent automatically when due)."},
                {"type": "Input.Text", "id": NOTE_INPUT, "label": "Note (optional)", "isMultiline": True,
                 "maxLength": 1000}],
            "actions": [_incident_action("Resolve all", RESOLVE_ALL, view.id)]}})
    for platform, _, url in view.statements:
        if url and url.startswith("https://"):
            actions.append({"type": "Action.OpenUrl", "title": f"Statement on {platform_name(platform)}",
                            "url": url})
    card: Card = {"type": "AdaptiveCard", "$schema": SCHEMA, "version": VERSION, "body": body,
                  "msteams": {"width": "Full"}}
    if actions:
        card["actions"] = actions
    return card


def _reply_all_inputs(view: IncidentView) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [
        {"type": "TextBlock", "wrap": True, "text": "Every member not answered yet gets a personal reply, paced "
                                                    "within each platform's limits; members who join later get it "
                                                    "too. Each member is answered once."}]
    if view.can_announce:
        where = ", ".join(platform_name(p) for p in view.can_announce)
        items.append({"type": "Input.Text", "id": STATEMENT_INPUT, "isMultiline": True, "maxLength": 3000,
                      "label": f"Public statement on {where} (optional)",
                      "placeholder": "Posted once as the brand's own post"})
    items.append({"type": "Input.Text", "id": TEMPLATE_INPUT, "isMultiline": True, "isRequired": True,
                  "label": "Personal reply to each member", "value": "Hi {first_name}, ", "maxLength": TEMPLATE_MAX,
                  "errorMessage": "Write the reply each member gets."})
    items.append({"type": "TextBlock", "text": "{first_name} becomes each customer's first name.", "isSubtle": True,
                  "size": "Small", "wrap": True, "spacing": "None"})
    return items


MEMBER_STATES = {"open": "open", "claimed": "🟡 claimed", "resolved": "✅ resolved"}


def _member(member: MemberView, text_limit: int, name_limit: int) -> dict[str, Any]:
    who = [run(literal(member.customer_name or "Someone", name_limit), weight="Bolder")]
    if member.customer_handle:
        who.append(run(f" ({literal(member.customer_handle, name_limit)})", isSubtle=True))
    who.append(run(f" · {platform_name(member.platform)} · #{member.case_id} · "
                   f"{MEMBER_STATES.get(member.status, member.status)}", isSubtle=True))
    items: list[dict[str, Any]] = [rich(*who)]
    if text_limit and member.text:
        items.append(rich(run(literal(member.text, text_limit)), spacing="None"))
    buttons: list[dict[str, Any]] = [_action("Split", SPLIT, member.case_id, digest=True)]
    if member.url and member.url.startswith("https://") and len(member.url) <= 500:
        buttons.append({"type": "Action.OpenUrl", "title": "Open", "url": member.url})
    items.append({"type": "ActionSet", "spacing": "None", "actions": buttons})
    return {"type": "Container", "separator": True, "items": items}


def members_card(members: list[MemberView]) -> Card:
    """The next members of an incident, in its card's thread, each with Split. Texts are cut shorter until the
    card fits Teams' card size (25 members of long emoji-laden text would not)."""
    head = {"type": "TextBlock", "weight": "Bolder", "wrap": True,
            "text": f"{len(members)} member{'s' if len(members) != 1 else ''}: #{members[0].case_id}"
                    f"–#{members[-1].case_id}" if members else "No members"}
    card = _card(head)
    for text_limit, name_limit in ((300, 100), (150, 60), (60, 40), (0, 20)):
        card = _card(head, *(_member(member, text_limit, name_limit) for member in members))
        if len(json.dumps(card).encode()) <= MAX_DIGEST_BYTES:
            break
    return card

__all__ = ["MAX_CARD_BYTES", "case_card", "incident_card", "literal", "members_card"]
