"""What the forms inside a Teams case card offer, from the reply context the services give every desk."""

from __future__ import annotations

from collections.abc import Sequence

from bot.chat.teams import cards
from bot.config import SavedReply
from bot.core.model import first_name_of, personalise
from bot.services.api import ReplyContext


def forms_for(context: ReplyContext, saved_replies: Sequence[SavedReply]) -> cards.Forms:
    view = context.view
    saved = [(s.title, personalise(s.text, name=view.customer_name, handle=view.customer_handle))
             for s in saved_replies]
    budget = max(1, min(3000, context.max_length - len(context.prefix)))
    return cards.Forms(greeting=f"Hi {first_name_of(view.customer_name, view.customer_handle)}, ", saved=saved,
                       max_length=budget, prefix=context.prefix, notice=context.rule.notice, modes=context.modes,
                       refusal=context.rule.refusal)
