"""The local Bluesky network (tests/kit/bluesky_net.py) works end to end: a customer mentions the brand, the
brand sees the mention in its notifications and replies in the thread, and the customer sees the reply.

Needs `bash tests/bluesky_net/install.sh` and PostgreSQL; skipped otherwise (failed with SOCIALOPS_REQUIRE_BLUESKY=1).
Run with -s to see the timings.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.kit.bluesky_net import Json, Network, Session, StrongRef, local_bluesky, poll, require_bluesky

MENTION = "@acme.test my order never arrived 📦"


def notification(net: Network, session: Session, reason: str, uri: str) -> Json | None:
    return next((n for n in net.notifications(session) if n["reason"] == reason and n["uri"] == uri), None)


def test_mention_and_reply_round_trip(tmp_path: Path) -> None:
    require_bluesky()
    started = time.monotonic()
    with local_bluesky(tmp_path) as net:
        network_start = time.monotonic() - started
        brand = net.create_account("acme.test", "brand-password")
        customer = net.create_account("customer.test", "customer-password")
        assert brand.handle == "acme.test" and brand.did.startswith("did:plc:")

        posted_at = time.monotonic()
        complaint = net.post(customer, MENTION, mention_did=brand.did)
        mention = poll(lambda: notification(net, brand, "mention", complaint.uri), timeout=20,
                       what="the mention in acme.test's notifications")
        mention_visible = time.monotonic() - posted_at
        assert mention["author"]["did"] == customer.did
        assert mention["record"]["text"] == MENTION
        assert mention["record"]["facets"] == [{
            "index": {"byteStart": 0, "byteEnd": len(b"@acme.test")},
            "features": [{"$type": "app.bsky.richtext.facet#mention", "did": brand.did}],
        }]

        answer = net.post(brand, "Sorry about that! Could you DM us your order number?", reply_to=complaint)
        assert net.get_record(answer.uri)["value"]["reply"] == {"root": complaint.json(), "parent": complaint.json()}
        reply_at = time.monotonic()
        seen = poll(lambda: notification(net, customer, "reply", answer.uri), timeout=20,
                    what="the brand's reply in customer.test's notifications")
        reply_visible = time.monotonic() - reply_at
        assert seen["author"]["did"] == brand.did
        assert StrongRef(**seen["record"]["reply"]["parent"]) == complaint

        # One level deeper, the root stays the customer's first post.
        follow_up = net.post(customer, "Sent you a DM, thanks", reply_to=answer)
        assert net.get_record(follow_up.uri)["value"]["reply"] == {"root": complaint.json(), "parent": answer.json()}
        thread = poll(lambda: _replies(net.get_post_thread(complaint.uri)), timeout=20, what="the whole thread")
        assert thread == [(answer.uri, [follow_up.uri])]

        memory = net.memory_mb()
        parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in net.timings.items())
    print(f"\nbluesky network: start {network_start:.1f} s ({parts}), "
          f"mention visible after {mention_visible:.2f} s, reply visible after {reply_visible:.2f} s, "
          f"memory node {memory['node']:.0f} MB + postgres {memory['postgres']:.0f} MB, "
          f"total with teardown {time.monotonic() - started:.1f} s")


def _replies(thread: Json) -> list[tuple[str, list[str]]] | None:
    """[(reply URI, [its replies' URIs])] under the thread's root, once the AppView has indexed two levels."""
    replies = thread["thread"].get("replies") or []
    shape = [(r["post"]["uri"], [rr["post"]["uri"] for rr in r.get("replies") or []]) for r in replies]
    return shape if shape and all(children for _, children in shape) else None
