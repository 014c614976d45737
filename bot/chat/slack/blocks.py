"""Block Kit for cases, modals, prompts and stats, rendered from the neutral views.

Action and callback ids are constants: renaming code must never break buttons on cards already posted.
All customer text goes through `mrkdwn.escape` and is cut to Block Kit's limits.
"""

from __future__ import annotations

import json
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
    SAVED_REPLY,
    SLACK_PINGABLE,
    SLACK_USER,
    SPLIT,
    TAKE_OVER,
    duration,
    kind_name,
    period_name,
    platform_name,
)
from bot.chat.slack.mrkdwn import cut, escape, escape_plain, link, quote
from bot.core.view import CaseView, IncidentView, MemberView, StatsView

Block = dict[str, Any]

REPLY_MODAL = "modal.reply"
REPLY_ALL_MODAL = "modal.reply_all"
RESOLVE_ALL_MODAL = "modal.resolve_all"
STATEMENT_INPUT = "statement"
TEMPLATE_INPUT = "template"
ESCALATE_MODAL = "modal.escalate"
RESOLVE_MODAL = "modal.resolve"
REPLY_INPUT = "reply_text"
MODE_INPUT = "reply_mode"
REASON_INPUT = "reason"
NOTE_INPUT = "note"

SECTION_LIMIT = 3000
PRIORITY_NAMES = {"urgent": ":red_circle: Urgent", "high": ":large_orange_circle: High",
                  "normal": ":white_circle: Normal", "low": ":large_blue_circle: Low"}
PRIORITY_LABELS = {"urgent": "Priority: urgent", "high": "Priority: high", "normal": "Priority: normal",
                   "low": "Priority: low"}
STATUS_NAMES = {"open": ":large_blue_circle: Open", "claimed": ":large_yellow_circle: Claimed",
                "resolved": ":white_check_mark: Resolved"}


def mention(user_id: str | None, fallback: str | None = None) -> str:
    if user_id and SLACK_USER.match(user_id):
        return f"<@{user_id}>"
    return escape(fallback or user_id or "nobody")


def ping(target: str) -> str:
    if target.startswith("S"):
        return f"<!subteam^{target}>"
    return f"<@{target}>"


def date(moment: datetime) -> str:
    stamp = int(moment.replace(tzinfo=UTC).timestamp())
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{stamp}^{{date_short_pretty}} at {{time}}|{fallback}>"


def plain(text: str, limit: int = 75) -> dict[str, Any]:
    return {"type": "plain_text", "text": cut(escape_plain(text), limit), "emoji": True}


def md(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": cut(text, SECTION_LIMIT)}


def button(label: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "button", "text": plain(label), "action_id": action_id, "value": value}
    if style:
        element["style"] = style
    return element


def customer_line(view: CaseView) -> str:
    who = f"*{escape(view.customer_name)}*" if view.customer_name else "*Someone*"
    details = []
    if view.customer_handle:
        details.append(escape(view.customer_handle))
    if view.customer_followers is not None:
        details.append(f"{view.customer_followers:,} followers")
    return who + (f" ({' · '.join(details)})" if details else "")


def message_text(text: str, url: str | None, budget: int) -> str:
    """The customer's words as a quote, cut to `budget` with a link to the whole message."""
    body = quote(escape(text))
    if len(body) <= budget:
        return body
    more = " " + link(url, "Read the whole message") if url else ""
    return cut(body, budget - len(more)) + more


def card(view: CaseView) -> tuple[str, list[Block]]:
    title = f"{platform_name(view.platform)} {kind_name(view.kind)} · case #{view.id}"
    if view.rating is not None:
        title += f" · {'★' * max(0, min(5, view.rating))}{'☆' * max(0, 5 - view.rating)}"
    badges = []
    if view.escalated:
        badges.append(":rotating_light: Escalated")
    if view.reopened and view.status != "resolved":
        badges.append(":leftwards_arrow_with_hook: Reopened")
    head = f"*{title}*" + (f"  {'  '.join(badges)}" if badges else "")
    blocks: list[Block] = [
        {"type": "section", "block_id": "head", "text": md(head + "\n" + customer_line(view))},
        {"type": "section", "block_id": "message", "text": md(message_text(view.text, view.url, SECTION_LIMIT))},
    ]
    owner = mention(view.owner, view.owner_name) if view.owner else "nobody"
    status = STATUS_NAMES.get(view.status, view.status)
    fields = [md(f"*Status*\n{status}"), md(f"*Owner*\n{owner}"), md(f"*Opened*\n{date(view.opened_at)}"),
              md(f"*Messages*\n{view.messages}"), md(f"*Priority*\n{PRIORITY_NAMES.get(view.priority, view.priority)}")]
    if view.due_at is not None and view.status != "resolved":
        due = date(view.due_at) + {"warning": "\n:warning: due soon", "breached": "\n:red_circle: target missed"}.get(
            view.sla_state, "")
        fields.append(md(f"*Reply due*\n{due}"))
    blocks.append({"type": "section", "block_id": "state", "fields": fields})
    notes: list[str] = []
    if view.priority_reasons:
        by = f" (set by {escape(view.priority_by)})" if view.priority_by else ""
        notes.append(f"*Why {escape(view.priority)}{by}:* {cut(escape(', '.join(view.priority_reasons)), 400)}")
    elif view.priority_by:
        notes.append(f"*Priority set by {escape(view.priority_by)}*")
    if view.url:
        notes.append(link(view.url, f"View on {platform_name(view.platform)}"))
    if view.escalated and view.escalation_reason:
        notes.append(f":rotating_light: Escalated by {escape(view.escalated_by or 'someone')}: "
                     f"{cut(escape(view.escalation_reason), 500)}")
    reply = view.last_reply
    if reply is not None:
        what = {"checkin": "Check-in", "away": "Away message"}.get(reply.kind, "Reply")
        by = f" by {escape(reply.author_name)}" if reply.author_name else ""
        if reply.status == "queued":
            notes.append(f":hourglass_flowing_sand: {what}{by} sending…")
        elif reply.status == "sent":
            notes.append(f":white_check_mark: {what}{by} sent" + (f" · {link(reply.url, 'view')}" if reply.url else ""))
        else:
            notes.append(f":x: {what}{by} failed: {cut(escape(reply.error or 'unknown error'), 500)}")
    if view.status == "resolved" and view.resolution_note:
        notes.append(f":memo: {cut(escape(view.resolution_note), 500)}")
    if view.incident_id is not None:
        notes.append(f":cyclone: Part of incident #{view.incident_id}"
                     + (f": {cut(escape(view.incident_label), 200)}" if view.incident_label else "")
                     + " (answered from the incident card, or split it off)")
    if view.acked_name and view.escalated:
        notes.append(f":raised_hand: Escalation acknowledged by {escape(view.acked_name)}")
    elif view.awaiting_ack:
        notes.append(f":rotating_light: Paged (level {view.page_level}), not acknowledged yet")
    if notes:
        blocks.append({"type": "context", "block_id": "notes", "elements": [md(n) for n in notes[:10]]})
    buttons = _buttons(view)
    if buttons:
        blocks.append({"type": "actions", "block_id": "actions", "elements": buttons})
    fallback = f"{title}: {escape(view.customer_name or view.customer_handle)} ({view.status})"
    return fallback, blocks


def _buttons(view: CaseView) -> list[dict[str, Any]]:
    value = str(view.id)
    available = {
        "claim": button("Claim", CLAIM, value, "primary"),
        "release": button("Release", RELEASE, value),
        "reply": button("Reply", REPLY, value),
        "escalate": button("Escalate", ESCALATE, value, "danger"),
        "resolve": button("Resolve", RESOLVE, value),
        "reopen": button("Reopen", REOPEN, value),
    }
    buttons = [available[name] for name in view.actions if name in available]
    if view.awaiting_ack:
        buttons.insert(0, button("Acknowledge", ACKNOWLEDGE, value, "primary"))
    if "retry" in view.actions and view.last_reply is not None:
        buttons.append(button("Retry", RETRY, str(view.last_reply.id), "primary"))
    if "split" in view.actions:
        buttons.append(button("Split off", SPLIT, value))
    if view.status != "resolved":
        options = [{"text": plain(PRIORITY_LABELS[p]), "value": f"{view.id}:{p}"} for p in PRIORITY_LABELS]
        current = next((o for o in options if o["value"] == f"{view.id}:{view.priority}"), None)
        select: dict[str, Any] = {"type": "static_select", "action_id": PRIORITY,
                                  "placeholder": plain("Priority"), "options": options}
        if current is not None:
            select["initial_option"] = current
        buttons.append(select)
    return buttons


def thread_line(text: str, quoted: str | None = None, url: str | None = None) -> str:
    line = escape(text)
    if url:
        line += " " + link(url, url if len(url) < 60 else "link")
    if quoted:
        line += "\n" + cut(quote(escape(quoted)), SECTION_LIMIT - len(line) - 1)
    return line


def thread_blocks(text: str) -> list[Block]:
    return [{"type": "section", "text": md(text)}]


def owned_by_other(case_id: int, owner: str, owner_name: str | None) -> tuple[str, list[Block]]:
    text = f"Case #{case_id} is already claimed by {mention(owner, owner_name)}."
    return text, [
        {"type": "section", "text": md(text + " Take it over? They will be told.")},
        {"type": "actions", "elements": [button("Take over", TAKE_OVER, str(case_id), "danger")]},
    ]


def _modal(callback_id: str, title: str, submit: str, case_id: int, blocks: list[Block]) -> dict[str, Any]:
    return {
        "type": "modal", "callback_id": callback_id, "title": plain(title, 24), "submit": plain(submit, 24),
        "close": plain("Cancel", 24), "private_metadata": json.dumps({"case": case_id}), "blocks": blocks,
    }


def reply_modal(view: CaseView, *, greeting: str, saved: list[tuple[str, str]], max_length: int,
                prefix: str, version: int = 0, notice: str | None = None,
                modes: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    blocks: list[Block] = [
        {"type": "section", "text": md(customer_line(view) + "\n" + message_text(view.text, view.url, 1500))},
    ]
    if notice:  # the platform's rule right now, e.g. Messenger's 24-hour window
        blocks.append({"type": "context", "block_id": "rule",
                       "elements": [md(f":information_source: {escape(notice)}")]})
    if saved:
        options = [{"text": plain(title), "value": str(i)} for i, (title, _) in enumerate(saved[:100])]
        blocks.append({"type": "actions", "block_id": "saved", "elements": [{
            "type": "static_select", "action_id": SAVED_REPLY, "placeholder": plain("Use a saved reply"),
            "options": options,
        }]})
    hint = f"Up to {max_length} characters."
    if prefix.strip():
        hint = f"Sent as a reply starting with {prefix.strip()} · " + hint
    blocks.append({
        "type": "input", "block_id": f"{REPLY_INPUT}.{version}", "label": plain("Your reply"),
        "hint": plain(hint, 150),
        "element": {"type": "plain_text_input", "action_id": REPLY_INPUT, "multiline": True,
                    "initial_value": greeting[:max_length], "max_length": max_length},
    })
    if modes:  # e.g. under the comment, or privately as a message
        options = [{"text": plain(label), "value": value} for value, label in modes[:10]]
        blocks.append({"type": "input", "block_id": MODE_INPUT, "label": plain("How"),
                       "element": {"type": "radio_buttons", "action_id": MODE_INPUT, "options": options,
                                   "initial_option": options[0]}})
    title = f"Reply on {platform_name(view.platform)}"
    return _modal(REPLY_MODAL, title if len(title) <= 24 else "Reply", "Send", view.id, blocks)


def escalate_modal(view: CaseView) -> dict[str, Any]:
    return _modal(ESCALATE_MODAL, "Escalate", "Escalate", view.id, [
        {"type": "section", "text": md(f"Case #{view.id} · {customer_line(view)}")},
        {"type": "input", "block_id": REASON_INPUT, "label": plain("Why does this need escalating?"),
         "element": {"type": "plain_text_input", "action_id": REASON_INPUT, "multiline": True,
                     "max_length": 1000}},
    ])


def resolve_modal(view: CaseView) -> dict[str, Any]:
    return _modal(RESOLVE_MODAL, "Resolve", "Resolve", view.id, [
        {"type": "section", "text": md(f"Case #{view.id} · {customer_line(view)}")},
        {"type": "input", "block_id": NOTE_INPUT, "optional": True, "label": plain("Note"),
         "element": {"type": "plain_text_input", "action_id": NOTE_INPUT, "multiline": True,
                     "max_length": 1000}},
    ])


def prompt(followup_id: int, status: str, text: str, customer: str, acted_by: str | None) -> tuple[str, list[Block]]:
    body = f"*Check-in due* for {escape(customer)}:\n{quote(escape(text))}"
    blocks: list[Block] = [{"type": "section", "text": md(body)}]
    if status == "prompted":
        value = str(followup_id)
        blocks.append({"type": "actions", "elements": [
            button("Send check-in", CHECKIN_SEND, value, "primary"), button("Skip", CHECKIN_SKIP, value)]})
        fallback = f"Check-in due for {escape(customer)}"
    else:
        outcome = {"sent": f":white_check_mark: Check-in sent by {escape(acted_by or 'someone')}.",
                   "skipped": f":fast_forward: Skipped by {escape(acted_by or 'someone')}.",
                   "cancelled": ":no_entry_sign: Not needed any more: the case was reopened."}
        line = outcome.get(status, status)
        blocks.append({"type": "context", "elements": [md(line)]})
        fallback = f"Check-in {status}"
    return fallback, blocks


def escalation(
    view: CaseView, *, reason: str, by: str, oncall: str | None, permalink: str | None
) -> tuple[str, list[Block]]:
    who = ping(oncall) + " " if oncall else ""
    text = (f"{who}:rotating_light: *Case #{view.id} escalated* by {escape(by)}: "
            f"{platform_name(view.platform)} {kind_name(view.kind)} from {customer_line(view)}")
    body = text + "\n" + cut(quote(escape(reason)), 1500)
    if permalink:
        body += "\n" + link(permalink, "Open the case")
    return f"Case #{view.id} escalated by {escape(by)}", [{"type": "section", "text": md(body)}]


def page(view: CaseView, *, level: int, notify: list[str], reminder: bool, minutes: int,
         permalink: str | None) -> tuple[str, list[Block]]:
    """A page of the escalation policy: who is paged, how long the escalation waits, and Acknowledge."""
    pings = " ".join(ping(target) for target in notify if SLACK_PINGABLE.match(target))
    again = " (reminder)" if reminder else ""
    waited = f"{minutes} min ago" if minutes else "just now"
    text = (f"{pings + ' ' if pings else ''}:rotating_light: *Level {level}{again}* · case #{view.id} escalated "
            f"{waited}, not acknowledged yet: {platform_name(view.platform)} {kind_name(view.kind)} from "
            f"{customer_line(view)}")
    if view.escalation_reason:
        text += "\n" + cut(quote(escape(view.escalation_reason)), 1000)
    if permalink:
        text += "\n" + link(permalink, "Open the case")
    blocks: list[Block] = [
        {"type": "section", "text": md(text)},
        {"type": "actions", "elements": [button("Acknowledge", ACKNOWLEDGE, str(view.id), "primary")]},
    ]
    return f"Level {level}: case #{view.id} escalated, not acknowledged", blocks


def handoff(rotation: str, who: str, until: datetime, overridden: bool) -> tuple[str, list[Block]]:
    """An on-call hand-off: the new person is pinged, so they know it is their turn."""
    cover = " (covering)" if overridden else ""
    text = (f":pager: {ping(who)} is now on call{cover} for *{escape(rotation)}* until {date(until)}.")
    return f"On call now for {rotation}", [{"type": "section", "text": md(text)}]


def notice(text: str) -> tuple[str, list[Block]]:
    """A problem for the admin (a source stopped): the bot's own words, escaped all the same."""
    body = f":warning: *SocialOps needs an admin*\n{escape(text)}"
    return f"SocialOps needs an admin: {escape(text)}", [{"type": "section", "text": md(body)}]


def oncall_schedule(now: list[Any], upcoming: list[Any], escalation_channel: str, policy: bool) -> str:
    """`/social oncall` with rotations: who is on call in each, until when, and who is next."""
    lines = []
    for shift in now:
        line = f"*{escape(shift.rotation)}*: {ping(shift.who)} until {date(shift.end)}"
        line += " (override)" if shift.overridden else ""
        following = next((u for u in upcoming if u.rotation == shift.rotation), None)
        if following is not None:
            line += f" · next: {mention(following.who)} from {date(following.start)}"
        lines.append(line)
    if not lines:
        lines.append("Nobody is on call right now (no rotation has started).")
    how = "the escalation policy pages them" if policy else "escalations ping them"
    return "On call now:\n" + "\n".join(lines) + f"\nIn <#{escalation_channel}>, {how}."


def oncall(target: str | None, escalation_channel: str) -> str:
    """`/social oncall`: who escalations ping (slack.oncall; rotations are not configured)."""
    if not target:
        return (f"Nobody is on call: escalations go to <#{escalation_channel}> without a ping "
                "(set `slack.oncall` in the config).")
    return f"On call: {ping(target)}. Escalations ping them in <#{escalation_channel}>."


def stats(view: StatsView) -> tuple[str, list[Block]]:
    label = period_name(view.period)
    rate = "–" if view.response_rate is None else f"{view.response_rate:.0%}"
    summary = (f"*{label}*: {view.new} new · {view.resolved} resolved · {view.escalated} escalated\n"
               f"Now: {view.open_now} open · {view.claimed_now} claimed")
    fields = [
        md(f"*First response (median)*\n{duration(view.first_response_median_s)}"),
        md(f"*First response (p90)*\n{duration(view.first_response_p90_s)}"),
        md(f"*Resolution (median)*\n{duration(view.resolution_median_s)}"),
        md(f"*Response rate*\n{rate}"),
        md(f"*Within target*\n{'–' if view.within_target is None else f'{view.within_target:.0%}'}"),
        md("*Targets missed*\n" + (", ".join(f"{n} {p}" for p, n in view.missed_by_priority) or "none")),
        md(f"*Escalations acknowledged*\n{view.acks}" + (f" · median {duration(view.ack_median_s)}"
                                                         if view.acks else "")),
    ]
    blocks: list[Block] = [
        {"type": "header", "text": plain(f"SocialOps stats · {label}", 150)},
        {"type": "section", "text": md(summary)},
        {"type": "section", "fields": fields},
    ]
    if view.by_platform_kind:
        lines = [f"{platform_name(p)} {kind_name(k)}: {n}" for p, k, n in view.by_platform_kind[:30]]
        blocks.append({"type": "section", "text": md("*New by platform and kind*\n" + "\n".join(lines))})
    if view.per_person:
        lines = [f"{mention(uid, name)}: {claims} claimed · {replies} replies · {resolves} resolved"
                 for uid, name, claims, replies, resolves in view.per_person[:20]]
        blocks.append({"type": "section", "text": md("*People*\n" + "\n".join(lines))})
    if view.incidents:
        lines = [f"{cut(escape(name), 120)}: {count:,} members ({status})" for name, count, status in view.incidents]
        blocks.append({"type": "section", "text": md("*Incidents (storms)*\n" + "\n".join(lines))})
    fallback = f"SocialOps stats ({label}): {view.new} new, {view.resolved} resolved"
    return fallback, blocks


# ---- incidents (storms) ---------------------------------------------------------------------------------------------

SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(per_minute: list[int]) -> str:
    """New members per minute as a text sparkline (no images: it renders in every client and in the sandbox)."""
    top = max(per_minute, default=0)
    if top == 0:
        return SPARKS[0] * len(per_minute)
    return "".join(SPARKS[min(len(SPARKS) - 1, (n * (len(SPARKS) - 1) + top - 1) // top)] for n in per_minute)


def incident_card(view: IncidentView) -> tuple[str, list[Block]]:
    label = cut(escape(view.label), 200)
    resolved = view.status == "resolved"
    head = f":cyclone: *Incident #{view.id}: {label}*" + ("  :white_check_mark: Resolved" if resolved else "")
    last5 = sum(view.per_minute[-5:])
    trend = f"`{sparkline(view.per_minute)}` {last5} in the last 5 min"
    platforms = ", ".join(f"{platform_name(p)} {n:,}" for p, n in view.platforms[:6]) or "–"
    blocks: list[Block] = [
        {"type": "section", "block_id": "head",
         "text": md(f"{head}\n*{view.count:,}* alike messages grouped into one incident")},
        {"type": "section", "block_id": "state", "fields": [
            md(f"*Members*\n{view.count:,}"), md(f"*Platforms*\n{platforms}"),
            md(f"*Trend (15 min)*\n{trend}"), md(f"*First · latest*\n{date(view.first_at)} · {date(view.last_at)}"),
        ]},
    ]
    if view.samples:
        samples = "\n".join(cut(quote(escape(sample)), 600) for sample in view.samples[:3])
        blocks.append({"type": "section", "block_id": "samples", "text": md("*Samples*\n" + samples)})
    notes: list[str] = []
    if view.reply_text is not None:
        by = f" by {escape(view.reply_name)}" if view.reply_name else ""
        total = view.replies_sent + view.replies_failed + view.replies_queued
        notes.append(f":outbox_tray: Reply to all{by}: {view.replies_sent:,} of {total:,} sent"
                     + (f" · {view.replies_failed:,} failed" if view.replies_failed else "")
                     + (f" · {view.replies_queued:,} queued" if view.replies_queued else ""))
        notes.append(f"Personal reply: {cut(quote(escape(view.reply_text)), 400)}")
    for platform, status, url in view.statements:
        mark = {"sent": ":white_check_mark:", "failed": ":x:"}.get(status, ":hourglass_flowing_sand:")
        notes.append(f"{mark} Public statement on {platform_name(platform)}: {status}"
                     + (f" · {link(url, 'view')}" if url else ""))
    if resolved:
        who = escape(view.resolved_name or "someone")
        when = f" on {date(view.resolved_at)}" if view.resolved_at else ""
        notes.append(f":white_check_mark: Resolved by {who}{when}"
                     + (f": {cut(escape(view.note), 400)}" if view.note else ""))
    notes.append("Members are listed in this thread; *Split off* makes one its own case again.")
    blocks.append({"type": "context", "block_id": "notes", "elements": [md(n) for n in notes[:10]]})
    buttons = []
    if "reply_all" in view.actions:
        buttons.append(button("Reply to all", REPLY_ALL, str(view.id), "primary"))
    if "resolve_all" in view.actions:
        buttons.append(button("Resolve all", RESOLVE_ALL, str(view.id)))
    if buttons:
        blocks.append({"type": "actions", "block_id": "actions", "elements": buttons})
    fallback = f"Incident #{view.id}: {escape(view.label)} ({view.count:,} members, {view.status})"
    return fallback, blocks


def members_digest(members: list[MemberView]) -> tuple[str, list[Block]]:
    """Members in the incident's thread: one section each with Split off (at most 40: Slack allows 50 blocks)."""
    blocks: list[Block] = []
    for member in members:
        who = f"*{escape(member.customer_name)}*" if member.customer_name else "*Someone*"
        if member.customer_handle:
            who += f" ({escape(member.customer_handle)})"
        line = f"#{member.case_id} · {platform_name(member.platform)} · {who}"
        if member.status == "resolved":
            line += " · :white_check_mark: resolved"
        body = message_text(member.text, member.url, 500)
        if member.url:
            body += " " + link(member.url, "view")
        blocks.append({"type": "section", "block_id": f"member.{member.case_id}", "text": md(line + "\n" + body),
                       "accessory": button("Split off", SPLIT, str(member.case_id))})
    first, last = members[0].case_id, members[-1].case_id
    text = f"{len(members)} member(s) of the incident: cases #{first}–#{last}"
    return text, [{"type": "context", "elements": [md(escape(text))]}, *blocks]


def _incident_modal(callback_id: str, title: str, submit: str, incident_id: int, blocks: list[Block]
                    ) -> dict[str, Any]:
    return {
        "type": "modal", "callback_id": callback_id, "title": plain(title, 24), "submit": plain(submit, 24),
        "close": plain("Cancel", 24), "private_metadata": json.dumps({"incident": incident_id}), "blocks": blocks,
    }


def reply_all_modal(view: IncidentView, *, max_length: int) -> dict[str, Any]:
    blocks: list[Block] = [
        {"type": "section", "text": md(f"*Incident #{view.id}: {cut(escape(view.label), 200)}*\n"
                                        f"Every member not answered yet ({view.count:,} in all) gets a personal "
                                        "reply, paced within each platform's limits; members who join later get it "
                                        "too. Each member is answered once.")},
    ]
    if view.can_announce:
        where = ", ".join(platform_name(p) for p in view.can_announce)
        blocks.append({
            "type": "input", "block_id": STATEMENT_INPUT, "optional": True,
            "label": plain("Public statement (optional)"),
            "hint": plain(f"Posted once as the brand's own post on {where}.", 150),
            "element": {"type": "plain_text_input", "action_id": STATEMENT_INPUT, "multiline": True,
                        "max_length": 3000},
        })
    blocks.append({
        "type": "input", "block_id": TEMPLATE_INPUT, "label": plain("Personal reply to each member"),
        "hint": plain("{first_name} becomes each customer's first name.", 150),
        "element": {"type": "plain_text_input", "action_id": TEMPLATE_INPUT, "multiline": True,
                    "initial_value": "Hi {first_name}, ", "max_length": max(1, min(3000, max_length))},
    })
    return _incident_modal(REPLY_ALL_MODAL, "Reply to all", "Send to all", view.id, blocks)


def resolve_all_modal(view: IncidentView, *, followups: int) -> dict[str, Any]:
    checkins = (f" Each gets the {followups} configured check-in(s), sent automatically when due."
                if followups else "")
    return _incident_modal(RESOLVE_ALL_MODAL, "Resolve all", "Resolve all", view.id, [
        {"type": "section", "text": md(f"Resolve incident #{view.id} and its {view.count:,} member(s)?{checkins}")},
        {"type": "input", "block_id": NOTE_INPUT, "optional": True, "label": plain("Resolution note"),
         "element": {"type": "plain_text_input", "action_id": NOTE_INPUT, "multiline": True, "max_length": 1000}},
    ])
