"""Triage: the priority a case gets and the reasons the card shows, from the team's rules."""

from __future__ import annotations

import pytest

from bot.core.priority import Rules, Signals, rank

RULES = Rules(vip_handles=["@BigCustomer", "ceo@mastodon.example"], vip_followers=10_000,
              complaint_words={"en": ["refund", "never arrived", "broken"], "de": ["kaputt", "Rückerstattung"],
                               "fi": ["rikki"]})


@pytest.mark.parametrize(("signals", "priority", "reasons"), [
    (Signals("mention", "Love the new colours!"), "normal", ()),
    (Signals("mention", "My parcel never   arrived"), "high", ("complaint (en: “never arrived”)",)),
    (Signals("mention", "I want a REFUND"), "high", ("complaint (en: “refund”)",)),
    (Signals("mention", "Der Deckel ist kaputt."), "high", ("complaint (de: “kaputt”)",)),
    (Signals("mention", "Ich möchte eine Rückerstattung"), "high", ("complaint (de: “rückerstattung”)",)),
    (Signals("mention", "Puhelin on rikki"), "high", ("complaint (fi: “rikki”)",)),
    (Signals("dm", "Hi, a question about sizes"), "normal", ("direct message",)),
    (Signals("dm", "It arrived broken", repeat=True), "urgent", ("complaint (en: “broken”)", "repeat contact",
                                                                   "direct message")),
    (Signals("mention", "Nice", handle="@bigcustomer"), "high", ("VIP (@bigcustomer)",)),
    (Signals("mention", "Nice", handle="ceo@mastodon.example"), "high", ("VIP (@ceo@mastodon.example)",)),
    (Signals("mention", "refund please", handle="someone", followers=25_000), "urgent",
     ("25,000 followers", "complaint (en: “refund”)")),
    (Signals("review", "Terrible", rating=1), "high", ("1-star review",)),
    (Signals("review", "Great shop", rating=5), "low", ("5-star review",)),
    (Signals("review", "Great shop but the box was broken", rating=4), "high", ("complaint (en: “broken”)",)),
    (Signals("mention", "unbroken record, refunded already"), "normal", ()),  # whole words only
])
def test_priority_and_reasons(signals: Signals, priority: str, reasons: tuple[str, ...]) -> None:
    triage = RULES.triage(signals)
    assert (triage.priority, triage.reasons) == (priority, reasons)


def test_no_rules_configured_means_everything_is_normal_except_reviews_and_dms() -> None:
    rules = Rules()
    assert rules.triage(Signals("mention", "refund now!!")).priority == "normal"
    assert rules.triage(Signals("review", "awful", rating=2)).priority == "high"
    assert rules.triage(Signals("dm", "hello")).priority == "normal"


def test_rank_orders_priorities() -> None:
    assert [rank(p) for p in ("urgent", "high", "normal", "low", "bogus")] == [0, 1, 2, 3, 2]


def test_business_hours_mistakes_name_the_key() -> None:
    from bot.config import ConfigError, config_from_mapping

    base = {"slack": {"channel": "C0CASES", "escalation_channel": "C0ESC"}}
    with pytest.raises(ConfigError, match=r"business_hours: timezone: 'Mars/Base' is not a time zone"):
        config_from_mapping({**base, "business_hours": {"timezone": "Mars/Base", "weekly": {"mon-fri": "08:00-20:00"}}})
    with pytest.raises(ConfigError, match=r"business_hours: weekly: 'mon-fry' is not a day"):
        config_from_mapping({**base, "business_hours": {"timezone": "Europe/Berlin", "weekly": {"mon-fry": "8:00-9:00"}}})
    with pytest.raises(ConfigError, match=r"targets.normal: 'soon' is not a duration"):
        config_from_mapping({**base, "targets": {"normal": "soon"}})
    config = config_from_mapping({**base, "business_hours": {"timezone": "Europe/Berlin",
                                                             "weekly": {"mon-fri": "08:00-20:00"},
                                                             "holidays": {"country": "DE"}}})
    assert config.business_hours is not None and config.targets.for_priority("urgent") == 900
