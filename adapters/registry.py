"""Which package builds each configured source (imported only when that source is configured)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from adapters.source import SourceParts

FACTORIES = {
    "generic": "adapters.generic.source",
    "mastodon": "adapters.mastodon.source",
    "x": "adapters.x.source",
    "meta": "adapters.meta.source",
    "bluesky": "adapters.bluesky.source",
    "google_reviews": "adapters.google_reviews.source",
}


def factory(name: str) -> Callable[..., SourceParts]:
    module = importlib.import_module(FACTORIES[name])
    make: Callable[..., SourceParts] = module.make
    return make


def configured(sources: Any) -> list[tuple[str, Any]]:
    """(name, config) of the registered sources switched on in the config file."""
    return [(name, getattr(sources, name)) for name in FACTORIES if getattr(sources, name, None) is not None]
