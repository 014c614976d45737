"""Databases for tests: a fresh SQLite file, or a fresh PostgreSQL database, per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

POSTGRES_ENV = "TEST_POSTGRES_URL"
"""A PostgreSQL server URL (for example postgresql://postgres@127.0.0.1:5432/postgres); tests create
and drop a database of their own on it. `.ci/run` starts one and sets this."""


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


@contextmanager
def fresh_database(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'socialops.db'}"
        return
    server = postgres_url()
    assert server, f"set {POSTGRES_ENV} to run the PostgreSQL half of the suite"
    name = f"socialops_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = server.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
