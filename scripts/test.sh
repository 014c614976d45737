#!/usr/bin/env bash
# The test command: sets up everything it needs, then runs the suite on SQLite and PostgreSQL.
# PostgreSQL: uses TEST_POSTGRES_URL if set, else starts a throwaway local cluster when PostgreSQL
# is installed; without either, the PostgreSQL half is skipped (CI always runs it).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e ".[dev]"
# The browser test drives Debian's chromium with playwright-core from npm (never `npx playwright install`).
if command -v npm >/dev/null 2>&1 && [ ! -d tests/browser/node_modules/playwright-core ]; then
  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
fi
# The Teams browser test: Microsoft's local Teams client (Agents Playground) from npm. Its licence forbids
# redistributing it, so it is installed here, git-ignored, and never committed.
if command -v npm >/dev/null 2>&1 && [ ! -x tests/browser_teams/node_modules/.bin/agentsplayground ]; then
  npm ci --prefix tests/browser_teams --no-audit --no-fund --loglevel=error
fi
# Bluesky's reference network (PLC, PDS, AppView) for the tests against the real thing: Node 22 and
# @atproto/dev-env from npm (first time ~2.5 min, 660 MB; nothing when already installed).
if command -v npm >/dev/null 2>&1 && [ -z "${SOCIALOPS_SKIP_BLUESKY:-}" ]; then
  bash tests/bluesky_net/install.sh
fi
pg_dir=""
cleanup() { [ -n "$pg_dir" ] && bash scripts/postgres.sh stop "$pg_dir"; [ -n "$pg_dir" ] && rm -rf "$pg_dir"; }
trap cleanup EXIT
if [ -z "${TEST_POSTGRES_URL:-}" ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  pg_dir=$(mktemp -d /tmp/socialops-pg.XXXXXX)
  TEST_POSTGRES_URL=$(bash scripts/postgres.sh start "$pg_dir" "${TEST_POSTGRES_PORT:-54329}")
  export TEST_POSTGRES_URL
fi
.venv/bin/python -m pytest "$@"
