"""Google reviews → Items, from Google's documented Review shape (tests/fixtures/google_reviews/)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.google_reviews.parse import (
    EPOCH,
    is_edited,
    parse_review,
    parse_reviews,
    rating_of,
    review_text,
    time_key,
    to_datetime,
)
from bot.core.model import Kind

FIXTURES = Path(__file__).parent / "fixtures" / "google_reviews"
NAME = "accounts/123/locations/456/reviews/AbFvOqReview1"
TEXTS = [
    "Die Bestellung kam nie an 😡 – Kundenservice? Grüße aus Köln",
    "Tilaus ei koskaan saapunut, pettymys 😞 Hyvää päivänjatkoa",
    "سفارش من هرگز نرسید! لطفاً پاسخ دهید 🙏",
    "Cafe\u0301 cre\u0300me bru\u0302le\u0301e — zalgo: Z\u0351\u0307a\u0313l\u0304g\u0352o",
    "👩🏽‍💻 family 👨‍👩‍👧‍👦 flags 🇫🇮🇩🇪\nsecond line\r\n\ttabbed  double  spaces ",
]


def shape() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / "reviews_list_response_shape.json").read_text())
    return loaded


def review(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": NAME, "reviewId": "AbFvOqReview1",
        "reviewer": {"profilePhotoUrl": "https://lh3.googleusercontent.com/a-/ALV-UjXyz=s120-c-rp-mo-br100",
                     "displayName": "Jane Doe", "isAnonymous": False},
        "starRating": "FOUR", "comment": "Friendly staff, long wait.",
        "createTime": "2025-03-01T10:00:00.123Z", "updateTime": "2025-03-01T10:00:00.123Z",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def test_the_documented_review_is_one_first_version_item() -> None:
    page = shape()["response"]
    (item,) = parse_reviews(page, location="locations/{locationId}")
    documented = page["reviews"][0]
    assert item.platform == "google" and item.kind is Kind.REVIEW
    # The docs' own example stamps updateTime 45 ms after createTime: still the first version, not an edit.
    assert item.platform_id == "<encrypted id>"
    assert item.conversation == "accounts/{accountId}/locations/{locationId}/reviews/{reviewId}"
    assert item.rating == 5
    assert item.text == "<plain text with markups>"
    assert item.author.name == "<name>" and item.author.id == "<url, only if isAnonymous=false>"
    assert item.author.handle == "" and item.author.followers is None
    assert item.created_at == datetime(2014, 10, 2, 15, 1, 23, tzinfo=UTC)
    assert item.url is None
    assert item.reply_to == {"via": "google_reviews", "review": documented["name"], "review_id": "<encrypted id>",
                             "location": "locations/{locationId}", "rating": 5, "complaint": False}
    assert item.raw == {"review": documented, "edited": False, "complaint": False}
    # The owner's reply is part of the review, never an item nor in the customer's text.
    assert "reply text" not in item.text


@pytest.mark.parametrize(("enum", "stars"), [("ONE", 1), ("TWO", 2), ("THREE", 3), ("FOUR", 4), ("FIVE", 5),
                                             ("STAR_RATING_UNSPECIFIED", None), ("SIX", None), (5, None)])
def test_star_rating_enum(enum: object, stars: int | None) -> None:
    assert rating_of(enum) == stars
    item = parse_review(review(starRating=enum))
    assert item is not None and item.rating == stars


def test_every_documented_enum_value_is_known() -> None:
    assert [rating_of(e) for e in shape()["starRating_enum"]] == [None, 1, 2, 3, 4, 5]


@pytest.mark.parametrize(("enum", "complaint"), [("ONE", True), ("TWO", True), ("THREE", False),
                                                 ("FIVE", False), ("STAR_RATING_UNSPECIFIED", False)])
def test_one_or_two_stars_is_a_complaint(enum: str, complaint: bool) -> None:
    item = parse_review(review(starRating=enum))
    assert item is not None
    assert item.reply_to["complaint"] is complaint and item.raw["complaint"] is complaint


def test_a_rating_only_review_says_so() -> None:
    item = parse_review(review(starRating="TWO", comment=None))
    assert item is not None and item.text == "(no text, ★★☆☆☆)" and item.rating == 2
    item = parse_review(review(starRating="STAR_RATING_UNSPECIFIED", comment="   "))
    assert item is not None and item.text == "(no text, no star rating)"


def test_an_anonymous_reviewer() -> None:
    item = parse_review(review(reviewer={"displayName": "A Google User", "isAnonymous": True}))
    assert item is not None
    assert item.author.name == "Anonymous" and item.author.id == "AbFvOqReview1"


def test_a_reviewer_without_photo_is_known_by_the_review_and_a_long_photo_link_is_shortened() -> None:
    item = parse_review(review(reviewer={"displayName": "Jane Doe", "isAnonymous": False}))
    assert item is not None and item.author.id == "AbFvOqReview1" and item.author.name == "Jane Doe"
    long = "https://lh3.googleusercontent.com/a-/" + "x" * 300
    first = parse_review(review(reviewer={"displayName": "Jane", "profilePhotoUrl": long}))
    again = parse_review(review(reviewer={"displayName": "Jane", "profilePhotoUrl": long}, reviewId="other"))
    assert first is not None and again is not None
    assert len(first.author.id) <= 200 and first.author.id == again.author.id  # stable per profile


def test_an_edited_review_is_a_new_item_in_the_same_case() -> None:
    original = parse_review(review())
    edited = parse_review(review(comment="Update: they called me back, all good now 🙂", starRating="FIVE",
                                 updateTime="2025-03-04T08:30:00.000000001Z"))
    assert original is not None and edited is not None
    assert original.platform_id == "AbFvOqReview1"
    assert edited.platform_id == "AbFvOqReview1@2025-03-04T08:30:00.000000001Z"
    assert edited.conversation == original.conversation == NAME
    assert edited.text == "(edited review, ★★★★★)\nUpdate: they called me back, all good now 🙂"
    assert edited.created_at == datetime(2025, 3, 4, 8, 30, tzinfo=UTC)
    assert edited.rating == 5 and edited.raw["edited"] is True and original.raw["edited"] is False
    assert edited.reply_to["review"] == NAME
    gone = parse_review(review(comment=None, starRating="ONE", updateTime="2025-03-04T08:30:00Z"))
    assert gone is not None and gone.text == "(edited review: no text, ★☆☆☆☆)" and gone.reply_to["complaint"]


def test_the_owners_reply_stamping_the_review_is_not_an_edit() -> None:
    replied = review(updateTime="2025-03-02T09:00:00.5Z",
                     reviewReply={"comment": "Sorry to hear that!", "updateTime": "2025-03-02T09:00:00Z"})
    assert not is_edited(replied)
    item = parse_review(replied)
    assert item is not None and item.platform_id == "AbFvOqReview1" and item.text == "Friendly staff, long wait."
    # ...but the customer editing well after the reply is.
    assert is_edited({**replied, "updateTime": "2025-03-03T09:00:00Z"})


@pytest.mark.parametrize("text", TEXTS)
def test_every_character_of_the_comment_is_kept(text: str) -> None:
    item = parse_review(review(comment=text))
    assert item is not None and item.text == text
    edited = parse_review(review(comment=text, updateTime="2025-04-01T00:00:00Z"))
    assert edited is not None and edited.text.split("\n", 1)[1] == text


@pytest.mark.parametrize("odd", [None, [], "review", {}, {"name": "not/a/review"},
                                 {"name": NAME, "reviewer": "x", "starRating": None, "createTime": "yesterday"},
                                 {"name": "accounts/1/locations/2/reviews/../../x"}])
def test_odd_input_never_raises(odd: Any) -> None:
    item = parse_review(odd)
    assert item is None or (item.conversation == NAME and item.platform_id == "AbFvOqReview1")
    assert parse_reviews({"reviews": [odd, review()]})[-1].platform_id == "AbFvOqReview1"
    assert parse_reviews({}) == [] and parse_reviews({"reviews": "x"}) == [] and parse_reviews(None) == []


def test_a_review_without_review_id_takes_it_from_its_name() -> None:
    body = review()
    del body["reviewId"]
    item = parse_review(body)
    assert item is not None and item.platform_id == "AbFvOqReview1"


def test_timestamps_order_to_the_nanosecond() -> None:
    stamps = ["2014-10-02T15:01:23Z", "2014-10-02T15:01:23.045Z", "2014-10-02T15:01:23.045123Z",
              "2014-10-02T15:01:23.045123456Z", "2014-10-02T15:01:23.045123457Z", "2014-10-02T17:01:24+02:00",
              "2014-10-02T15:01:25.1Z"]
    keys = [time_key(s) for s in stamps]
    assert None not in keys
    assert keys == sorted(keys, key=lambda k: k or (0, 0)) and len(set(keys)) == len(keys)
    assert time_key(EPOCH) == (0, 0)
    for bad in ("", "2014-10-02", "2014-10-02T15:01:23", "2014-13-02T15:01:23Z", "2014-10-02T15:01:23.1234567890Z",
                None, 12):
        assert time_key(bad) is None
    assert to_datetime("2014-10-02T15:01:23.045123456Z") == datetime(2014, 10, 2, 15, 1, 23, 45123, tzinfo=UTC)


def test_review_text_rules() -> None:
    assert review_text("Tschüss", 3, edited=False) == "Tschüss"
    assert review_text(None, 1, edited=False) == "(no text, ★☆☆☆☆)"
    assert review_text("", None, edited=True) == "(edited review: no text, no star rating)"
    assert review_text(" x ", 3, edited=True) == "(edited review, ★★★☆☆)\n x "


def test_parsing_leaves_the_payload_untouched() -> None:
    body = review(reviewReply={"comment": "Thanks", "updateTime": "2025-03-01T11:00:00Z"})
    before = copy.deepcopy(body)
    item = parse_review(body)
    assert body == before and item is not None and item.raw["review"] == before
