"""Storms: many look-alike items within a window become one incident; everything else is left alone."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core import storms
from bot.core.storms import (
    BANDS,
    MIN_WORDS,
    SIMILARITY,
    WORD_CACHE,
    StormDetector,
    near_duplicate_text,
    signatures,
    similarity,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)

APP_DOWN = ["The app is down again!!", "the app is DOWN again", "@acme the app is down again, fix it"]
COMPLAINT = ("@Acme the app has been down for two hours and I cannot check my order 88123 or reach support, "
             "third time this week")
COPIES = [
    COMPLAINT,
    "RT @maria_k: " + COMPLAINT,
    COMPLAINT.upper(),
    COMPLAINT.replace("88123", "40417") + " 😡",
    COMPLAINT.replace("@Acme", "@AcmeSupport @friend") + "!!! fix it",
    COMPLAINT + " please",
    COMPLAINT.replace("two hours", "two hours now"),
    COMPLAINT.replace(",", "...") + " unacceptable",
    COMPLAINT.replace("third time", "3rd time"),
    "same here " + COMPLAINT,
    COMPLAINT + " any update?",
    "@Acme " + COMPLAINT.removeprefix("@Acme ").replace("this week", "this week!"),
]
CHATTER = [
    "Where is my parcel? Ordered last Tuesday and the tracking page has not moved since",
    "Love the new winter jackets, do you ship to Finland as well or only within the EU",
    "My refund for the returned shoes still has not arrived, it has been two weeks now",
    "Can I change the delivery address after the order was placed? Moved house last week",
    "The discount code from your newsletter says expired but the email came yesterday",
    "Great service in the Berlin store today, the staff helped me find the right size",
    "Is there a student discount? I could not find anything about it on your website",
    "Die Lieferung kam beschädigt an, der Karton war komplett eingedrückt und nass",
    "Tilaukseni on ollut matkalla jo kymmenen päivää, milloin se oikein saapuu perille",
    "سفارش من هنوز نرسیده و کد پیگیری هم کار نمی‌کند، لطفاً بررسی کنید",
]


def at(minutes: float = 0, seconds: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes, seconds=seconds)


def dups(text: str) -> set[str]:
    return {f for f in signatures(text) if f.startswith("dup:")}


def detector(threshold: int = 10, *, keywords: tuple[str, ...] = (), ignore: tuple[str, ...] = ()) -> StormDetector:
    return StormDetector(threshold, WINDOW, keywords=keywords, ignore=ignore)


# ---- signatures -----------------------------------------------------------------------------------------------------

def test_hashtags_are_case_folded_in_any_script() -> None:
    text = "Again?! #Outage #STÖRUNG #Häiriö #قطعی_برق #停電 (#AcmeDown) #outage"
    tags = {f for f in signatures(text) if f.startswith("tag:")}
    assert tags == {"tag:outage", "tag:störung", "tag:häiriö", "tag:قطعی_برق", "tag:停電", "tag:acmedown"}


def test_order_numbers_entities_and_csharp_are_not_hashtags() -> None:
    text = "Order #88123 still missing, I&#39;m a C# developer and this is #1 on my list"
    assert {f for f in signatures(text) if f.startswith("tag:")} == set()


@pytest.mark.parametrize("written", [
    "https://status.acme.com/incident/42",
    "https://status.acme.com/incident/42/",
    "http://STATUS.Acme.com/incident/42?utm_source=x&ref=y",
    "https://www.status.acme.com/incident/42#latest",
    "www.status.acme.com/incident/42",
    "https://user@status.acme.com:443/incident/42",
    "(see https://status.acme.com/incident/42).",
])
def test_links_are_normalised(written: str) -> None:
    features = signatures(f"Still broken {written}")
    assert {f for f in features if f.startswith("link:")} == {"link:status.acme.com/incident/42"}


def test_link_keeps_its_path_case_and_a_bare_host() -> None:
    features = signatures("see https://ACME.com/ and https://acme.com/Help/Returns?lang=de")
    assert {f for f in features if f.startswith("link:")} == {"link:acme.com", "link:acme.com/Help/Returns"}


def test_near_duplicate_text_drops_mentions_links_hashtags_punctuation_and_digits() -> None:
    text = "@acme The app is DOWN again!! https://status.acme.com/x #fail order 88123"
    assert near_duplicate_text(text) == "the app is down again order 00000"


def test_copies_of_a_short_complaint_share_near_duplicate_keys() -> None:
    first, second, third = (dups(text) for text in APP_DOWN)
    assert len(first) == BANDS
    assert first == second  # only case and punctuation differ
    assert first & third  # "fix it" added: candidates
    assert similarity(APP_DOWN[0], APP_DOWN[2]) >= SIMILARITY  # and similar enough to group


def test_a_different_short_text_shares_nothing() -> None:
    great = "The app is great"
    assert len(near_duplicate_text(great).split()) < MIN_WORDS
    assert dups(great) == set()
    assert not signatures(great) & signatures(APP_DOWN[0])
    longer = "The app is great, I love the new design and the dark mode"
    assert not dups(longer) & dups(APP_DOWN[0])
    assert similarity(longer, APP_DOWN[0]) < SIMILARITY


def test_unrelated_posts_share_no_near_duplicate_keys() -> None:
    keys = [dups(text) for text in CHATTER]
    for i, one in enumerate(keys):
        assert len(one) == BANDS
        for other in keys[i + 1:]:
            assert not one & other


@pytest.mark.parametrize(("one", "other"), [
    ("@Acme Die App lädt nicht mehr, der Login geht nicht. Ist das bei allen so?",
     "Die App lädt nicht mehr, der Login geht nicht!!! Ist das bei allen so @acme_hilfe"),
    ("@Acme Sovellus ei aukea ollenkaan, eikä kirjautuminen onnistu. Onko muilla sama?",
     "RT @liisa: sovellus EI aukea ollenkaan eikä kirjautuminen onnistu, onko muilla sama"),
    ("@Acme اپلیکیشن اصلاً باز نمی‌شود و نمی‌توانم وارد شوم. سفارش ۴۵۶۷۸",
     "اپلیکیشن اصلاً باز نمی‌شود و نمی‌توانم وارد شوم!! سفارش ۱۲۳۹۹ @acme_fa"),
])
def test_copies_in_german_finnish_and_persian_share_keys(one: str, other: str) -> None:
    assert dups(one) == dups(other)
    assert similarity(one, other) == 1.0
    assert not dups(one) & dups(CHATTER[7]) and not dups(one) & dups(CHATTER[9])


def test_keywords_are_whole_words_or_phrases_also_inside_hashtags() -> None:
    keywords = ["Outage", "never arrived"]
    assert {f for f in signatures("Big outage here", keywords) if f.startswith("kw:")} == {"kw:outage"}
    assert {f for f in signatures("Parcel never   arrived!", keywords) if f.startswith("kw:")} == {"kw:never arrived"}
    assert {f for f in signatures("#Outage again", keywords) if f.startswith("kw:")} == {"kw:outage"}
    assert {f for f in signatures("Outages are rare, it arrived", keywords) if f.startswith("kw:")} == set()
    assert not [f for f in signatures("Big outage here") if f.startswith("kw:")]


def test_signatures_are_the_same_in_every_process() -> None:
    code = ("from bot.core.storms import signatures; "
            f"print(sorted(signatures({COMPLAINT!r} + ' #Outage https://acme.com/x')))")
    root = Path(storms.__file__).resolve().parents[2]
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={"PYTHONHASHSEED": seed}, cwd=root).stdout for seed in ("1", "2")}
    assert outputs == {str(sorted(signatures(COMPLAINT + " #Outage https://acme.com/x"))) + "\n"}


# ---- the detector ---------------------------------------------------------------------------------------------------

def test_nine_copies_are_no_storm_the_tenth_opens_one_with_all_ten() -> None:
    storm = detector()
    decisions = [storm.observe(f"s{i}", COPIES[i], "x", at(seconds=30 * i)) for i in range(10)]
    assert [d.kind for d in decisions[:9]] == ["none"] * 9
    opened = decisions[9]
    assert opened.kind == "opened"
    assert opened.members == tuple(f"s{i}" for i in range(10))
    assert opened.incident is not None and opened.incident.startswith("dup:")
    assert opened.incident.endswith("@20261201T090430Z")
    later = [storm.observe(f"s{i}", COPIES[i], "bluesky", at(minutes=5 + i)) for i in (10, 11)]
    assert [(d.kind, d.incident) for d in later] == [("joined", opened.incident)] * 2
    info = storm.incident(opened.incident)
    assert info is not None
    assert info.count == 12
    assert info.label == f"near-duplicates of: “{near_duplicate_text(COMPLAINT)[:59].rstrip()}…”"


def test_storm_items_are_grouped_and_chatter_in_between_never_is() -> None:
    storm = detector()
    grouped: set[str] = set()
    kinds: dict[str, str] = {}
    for i in range(30):
        for item_id, text in ((f"s{i}", COPIES[i % len(COPIES)]), (f"c{i}", CHATTER[i % len(CHATTER)] + f" ({i})")):
            decision = storm.observe(item_id, text, "x", at(seconds=20 * i))
            kinds[item_id] = decision.kind
            grouped.update(decision.members)
            if decision.kind == "joined":
                grouped.add(item_id)
    assert grouped == {f"s{i}" for i in range(30)}  # every storm item is a member
    assert {kinds[f"c{i}"] for i in range(30)} == {"none"}  # no chatter item is
    assert [kinds[f"s{i}"] for i in range(30)].count("opened") == 1


def test_chatter_repeating_a_word_or_two_is_left_alone() -> None:
    storm = detector(threshold=3)
    texts = ["the app is great and I love the colours", "the app is slow on my old phone today",
             "the app is asking me to log in every day", "the app is missing the order history page"]
    assert [storm.observe(str(i), t, "x", at(seconds=i)).kind for i, t in enumerate(texts * 2)] == ["none"] * 8


def test_items_spread_beyond_the_window_never_open_an_incident() -> None:
    storm = detector()
    kinds = {storm.observe(f"s{i}", "#outage " + CHATTER[i % 10], "x", at(minutes=2 * i)).kind for i in range(40)}
    assert kinds == {"none"}


def test_the_window_is_inclusive() -> None:
    exactly, late = detector(), detector()
    for i in range(9):
        exactly.observe(f"a{i}", f"#outage {CHATTER[i]}", "x", at(minutes=i))
        late.observe(f"a{i}", f"#outage {CHATTER[i]}", "x", at(minutes=i))
    assert exactly.observe("a9", "#outage 10", "x", at(minutes=15)).kind == "opened"
    assert late.observe("a9", "#outage 10", "x", at(minutes=15, seconds=1)).kind == "none"


def test_items_older_than_the_window_are_forgotten() -> None:
    storm = detector()
    for i in range(9):
        storm.observe(f"old{i}", f"#outage {CHATTER[i]}", "x", at(seconds=i))
    decisions = [storm.observe(f"new{i}", f"#outage {CHATTER[i]} too", "x", at(minutes=16, seconds=i))
                 for i in range(9)]
    assert {d.kind for d in decisions} == {"none"}
    assert len(storm._timeline) == 9
    assert storm.observe("new9", "#outage!", "x", at(minutes=16, seconds=9)).members == tuple(
        f"new{i}" for i in range(10))


def test_a_hashtag_storm_and_a_link_storm_stay_apart() -> None:
    storm = detector()
    tag_texts = [f"#AcmeDown {text}" for text in CHATTER]
    link_texts = [f"{text} https://status.acme.com/incident/{'42' if i % 2 else '42/'}" for i, text in
                  enumerate(reversed(CHATTER))]
    results: dict[str, tuple[str, str | None]] = {}
    opened: dict[str, tuple[str, ...]] = {}
    for i in range(10):
        for prefix, text in (("t", tag_texts[i]), ("l", link_texts[i])):
            decision = storm.observe(f"{prefix}{i}", text, "x", at(seconds=10 * i))
            results[f"{prefix}{i}"] = (decision.kind, decision.incident)
            if decision.kind == "opened":
                assert decision.incident is not None
                opened[decision.incident.split("@")[0]] = decision.members
    assert opened == {"tag:acmedown": tuple(f"t{i}" for i in range(10)),
                      "link:status.acme.com/incident/42": tuple(f"l{i}" for i in range(10))}
    assert [info.label for info in storm.incidents()] == ["#acmedown", "status.acme.com/incident/42"]


def test_an_item_matching_two_incidents_joins_the_older() -> None:
    storm = detector(threshold=3)
    for i in range(3):
        storm.observe(f"l{i}", f"{CHATTER[i]} https://status.acme.com/incident/42", "x", at(seconds=i))
    for i in range(3):
        storm.observe(f"t{i}", f"#AcmeDown {CHATTER[i + 3]}", "x", at(seconds=10 + i))
    older, newer = (info.key for info in storm.incidents())
    assert older.startswith("link:") and newer.startswith("tag:")
    both = storm.observe("both", "#acmedown see status.acme.com? no: https://status.acme.com/incident/42", "x",
                         at(seconds=20))
    assert (both.kind, both.incident) == ("joined", older)
    assert [info.count for info in storm.incidents()] == [4, 3]


def test_members_are_not_counted_again_under_their_other_features() -> None:
    storm = detector(threshold=3)
    kinds = [storm.observe(f"a{i}", f"#outage https://status.acme.com/x {CHATTER[i]}", "x", at(seconds=i)).kind
             for i in range(3)]
    assert kinds == ["none", "none", "opened"]
    assert [info.feature for info in storm.incidents()] == ["tag:outage"]  # ties go to the hashtag
    assert [storm.observe(f"b{i}", f"https://status.acme.com/x {CHATTER[i + 3]}", "x", at(seconds=5 + i)).kind
            for i in range(3)] == ["none", "none", "opened"]  # the link counts from zero


def test_an_incident_ends_after_a_quiet_window_and_a_new_burst_gets_a_new_key() -> None:
    storm = detector(threshold=3)
    first = [storm.observe(f"a{i}", f"#outage {CHATTER[i]}", "x", at(minutes=i)) for i in range(3)][-1]
    assert first.kind == "opened" and first.incident == "tag:outage@20261201T090200Z"
    assert storm.observe("a3", "#outage still", "x", at(minutes=17)).kind == "joined"  # 15 min after the last
    quiet = storm.observe("b0", "#outage back?", "x", at(minutes=32, seconds=1))
    assert quiet.kind == "none"
    assert [(c.key, c.count, c.last_at) for c in quiet.closed] == [(first.incident, 4, at(minutes=17))]
    assert storm.incident(first.incident) is None and storm.incidents() == []
    again = [storm.observe(f"b{i}", f"#outage {CHATTER[i]}", "x", at(minutes=33 + i)) for i in (1, 2)][-1]
    assert again.kind == "opened"
    assert again.incident == "tag:outage@20261201T093500Z" != first.incident
    assert again.members == ("b0", "b1", "b2")


def test_sweep_ends_incidents_when_no_items_arrive() -> None:
    storm = detector(threshold=2)
    storm.observe("a", "#outage 1", "x", at())
    storm.observe("b", "#outage 2", "x", at(minutes=1))
    assert storm.sweep(at(minutes=16)) == []
    assert [info.count for info in storm.sweep(at(minutes=16, seconds=1))] == [2]
    assert storm._timeline == type(storm._timeline)() and storm._buckets == {} and storm._owner == {}


def test_card_facts_count_platforms_samples_times_and_trend() -> None:
    storm = StormDetector(4, WINDOW, max_samples=2)
    platforms = ["x", "x", "bluesky", "mastodon", "x", "instagram", "x"]
    minutes = [0, 0.5, 3, 3.2, 3.5, 4, 6]
    key = None
    for i, (platform, minute) in enumerate(zip(platforms, minutes, strict=True)):
        decision = storm.observe(f"i{i}", f"#Outage no. {i}: {CHATTER[i]}", platform, at(minutes=10 + minute))
        key = decision.incident or key
    assert key is not None
    info = storm.incident(key)
    assert info is not None
    assert (info.feature, info.label, info.count) == ("tag:outage", "#outage", 7)
    assert info.platforms == Counter({"x": 4, "bluesky": 1, "mastodon": 1, "instagram": 1})
    assert info.samples == [f"#Outage no. 0: {CHATTER[0]}", f"#Outage no. 1: {CHATTER[1]}"]
    assert (info.first_at, info.last_at) == (at(minutes=10), at(minutes=16))
    # Minutes 09:02 … 09:16 (UTC); the items came at 09:10 (2), 09:13 (3), 09:14, 09:16.
    assert info.per_minute == [0] * 8 + [2, 0, 0, 3, 1, 0, 1]
    assert len(info.per_minute) == storms.TREND_MINUTES
    storm.sweep(at(minutes=24))  # 09:10 … 09:24
    later = storm.incident(key)
    assert later is not None and later.per_minute == [2, 0, 0, 3, 1, 0, 1] + [0] * 8


def test_a_keyword_storm_and_ignored_features() -> None:
    storm = detector(threshold=3, keywords=("outage",), ignore=("tag:acme", "link:acme.com"))
    kinds = [storm.observe(f"a{i}", f"#acme https://acme.com/ {CHATTER[i]}", "x", at(seconds=i)).kind
             for i in range(5)]
    assert kinds == ["none"] * 5
    decisions = [storm.observe(f"k{i}", f"Another outage? {CHATTER[i + 5]}", "x", at(seconds=10 + i))
                 for i in range(3)]
    assert decisions[-1].incident is not None and decisions[-1].incident.startswith("kw:outage@")
    info = storm.incident(decisions[-1].incident)
    assert info is not None and info.label == "keyword “outage”"


def test_ignore_entries_are_named_as_the_detector_names_features() -> None:
    """What an admin writes in `storms.ignore` matches what the detector counts: a link's path keeps its case,
    a keyword's digits are folded like the text's."""
    written = ["#Acme", "https://www.Acme.com/Status/", "acme.com", "App down", "X2 phone", "tag:acme"]
    assert [storms.feature_of(entry) for entry in written] == [
        "tag:acme", "link:acme.com/Status", "link:acme.com", "kw:app down", "kw:x0 phone", "tag:acme"]
    seen = storms.signatures("Is https://acme.com/Status down? #ACME", keywords=["X2 phone"])
    assert {storms.feature_of("https://www.Acme.com/Status/"), storms.feature_of("#Acme")} <= seen
    storm = detector(threshold=3, ignore=[storms.feature_of("https://www.Acme.com/Status/")])
    kinds = [storm.observe(f"s{i}", f"see https://acme.com/Status {CHATTER[i]}", "x", at(seconds=i)).kind
             for i in range(5)]
    assert kinds == ["none"] * 5


def test_time_never_goes_back() -> None:
    storm = detector(threshold=3)
    storm.observe("a", "#outage 1", "x", at(minutes=20))
    storm.observe("b", "#outage 2", "x", at(minutes=1))  # a late delivery counts as arriving at 09:20
    opened = storm.observe("c", "#outage 3", "x", at(minutes=21))
    assert opened.kind == "opened" and opened.members == ("a", "b", "c")
    info = storm.incident(opened.incident or "")
    assert info is not None and info.first_at == at(minutes=20)


def test_bad_settings_and_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        StormDetector(1, WINDOW)
    with pytest.raises(ValueError, match="window"):
        StormDetector(10, timedelta(0))
    with pytest.raises(ValueError, match="timezone"):
        detector().observe("a", "text", "x", datetime(2026, 12, 1, 9))


def test_memory_stays_bounded_after_100_000_unrelated_items() -> None:
    rng = random.Random(5)
    letters = "abcdefghijklmnopqrstuvwxyzäöü"
    vocabulary = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(5_000)]
    storm = detector()
    for n in range(100_000):
        text = " ".join(rng.choices(vocabulary, k=rng.randint(8, 20)))
        if n % 10 == 0:
            text += f" #{rng.choice(vocabulary)}{n} https://acme.com/orders/{n}"
        decision = storm.observe(f"c{n}", text, "x", at(seconds=n))  # one a second: 901 within 15 minutes
        assert decision.kind == "none"
    assert len(storm._timeline) == 901
    assert len(storm._buckets) <= 901 * 3
    assert len(storm._bands) <= 901 * BANDS
    assert storm._incidents == {} and storm._owner == {}
    for n in range(WORD_CACHE + 100):  # a vocabulary larger than the cache
        storms._vectors(f"word{n}")
    assert len(storms._WORD_VECTORS) <= WORD_CACHE
