"""Waiting for what the user would see, without blocking the event loop the bot runs on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(predicate: Callable[[], T], timeout: float = 10.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
        except (LookupError, AssertionError, StopIteration):
            result = None  # type: ignore[assignment]
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout}s: {what or predicate} (last: {result!r})")
        await asyncio.sleep(0.02)
