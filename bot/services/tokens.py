"""OAuth tokens sources renew themselves, kept in the database so every copy (and the next start) uses the
newest: X rotates its refresh token on every use, so the one in the environment works only once."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from storage.db import transaction
from storage.tables import CredentialRow, utcnow


class DbTokens:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def load(self, name: str) -> dict[str, Any] | None:
        def read() -> dict[str, Any] | None:
            with transaction(self._engine, write=False) as session:
                row = session.get(CredentialRow, name)
                return dict(row.value) if row else None

        return await asyncio.to_thread(read)

    async def save(self, name: str, value: dict[str, Any]) -> None:
        def write() -> None:
            with transaction(self._engine) as session:
                row = session.get(CredentialRow, name, with_for_update=True)
                if row is None:
                    session.add(CredentialRow(name=name, value=dict(value)))
                else:
                    row.value, row.updated_at = dict(value), utcnow()
                    session.add(row)

        try:
            await asyncio.to_thread(write)
        except IntegrityError:  # another copy stored the first one at the same moment: overwrite it
            await asyncio.to_thread(write)
