"""The Teams desk in Microsoft's local Teams client: the real bot (`python app.py` with a Teams-only config) behind
Microsoft's Agents Playground (`@microsoft/m365agentsplayground` from npm, never committed: its licence forbids
redistribution), driven in headless Chromium (Debian's) by playwright-core.

Needs node, /usr/bin/chromium and `npm ci --prefix tests/browser_teams` (scripts/test.sh does it). Skipped
without them, unless SOCIALOPS_REQUIRE_BROWSER=1 (CI), where it fails instead.
Screenshots: artifacts/screenshots/teams-*.png.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from tests.kit.sandbox import ROOT, clean_env, free_port

FLOW_DIR = ROOT / "tests" / "browser_teams"
PLAYGROUND = FLOW_DIR / "node_modules" / ".bin" / "agentsplayground"
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SECRET = "teams-browser-secret"


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is not installed (apt-get install chromium)"
    if not PLAYGROUND.exists() or not (FLOW_DIR / "node_modules" / "playwright-core").exists():
        return "the Agents Playground is not installed (npm ci --prefix tests/browser_teams)"
    return None


@pytest.fixture
def browser_ready() -> None:
    missing = _missing()
    if missing:
        if os.environ.get("SOCIALOPS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SOCIALOPS_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)


def _wait_until(check: object, what: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {process.returncode}: {log.read_text()[-3000:]}")
        try:
            if callable(check) and check():
                return
        except (httpx.HTTPError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not start within {timeout} s: {log.read_text()[-3000:]}")
        time.sleep(0.1)


@contextmanager
def _process(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        process = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_a_case_card_is_claimed_and_resolved_in_the_teams_client(browser_ready: None, tmp_path: Path) -> None:
    bot_port, playground_port = free_port(), free_port()
    connector = f"http://127.0.0.1:{playground_port}/_connector"
    config = tmp_path / "socialops.yml"
    config.write_text(yaml.safe_dump({
        "teams": {"service_url": connector, "channel": "team-id", "oncall": "user-id-1", "oncall_name": "Megan"},
        "sources": {"generic": {"secret_env": "GENERIC_WEBHOOK_SECRET"}},
        "saved_replies": [{"title": "Sorry", "text": "Hi {first_name}, sorry about that."}],
    }))
    bot_env = {**clean_env(), "SOCIALOPS_CONFIG": str(config), "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
               "PORT": str(bot_port), "HOST": "127.0.0.1", "GENERIC_WEBHOOK_SECRET": SECRET}
    for name in ("MICROSOFT_APP_ID", "MICROSOFT_APP_PASSWORD", "MICROSOFT_APP_TENANT_ID"):
        bot_env.pop(name, None)  # the playground sends no tokens: local development mode
    playground_env = {**os.environ, "APPLICATION_INSIGHTS_NO_STATSBEAT": "true", "TEAMSAPPTESTER_BROWSER": "none",
                      "M365_AGENTS_PLAYGROUND_LOGFILE": str(tmp_path / "playground-internal.log")}
    bot_log, playground_log = tmp_path / "bot.log", tmp_path / "playground.log"
    started = time.monotonic()
    with _process([sys.executable, str(ROOT / "app.py")], bot_env, tmp_path, bot_log) as bot, \
            _process([str(PLAYGROUND), "start", "-e", f"http://127.0.0.1:{bot_port}/api/messages", "-c", "msteams",
                      "-p", str(playground_port), "--service-url", connector, "--disable-telemetry"],
                     playground_env, tmp_path, playground_log) as playground:
        _wait_until(lambda: httpx.get(f"http://127.0.0.1:{bot_port}/healthz", timeout=1).status_code == 200,
                    "the bot", bot, bot_log)
        _wait_until(lambda: re.search(rf"Listening on {playground_port}\b", playground_log.read_text()),
                    "the playground", playground, playground_log)
        ready = time.monotonic()
        result = subprocess.run(
            ["node", str(FLOW_DIR / "teams_flow.mjs"), f"http://127.0.0.1:{playground_port}/", str(SHOTS)],
            env={**os.environ, "CHROMIUM": CHROMIUM, "TEAMS_FLOW_CUSTOMER": "Dana Scully",
                 "TEAMS_FLOW_EVENT_URL": f"http://127.0.0.1:{bot_port}/webhooks/generic",
                 "TEAMS_FLOW_EVENT_SECRET": SECRET, "TEAMS_FLOW_DUMP": str(tmp_path.parent / "teams-dump.html")},
            capture_output=True, text=True, timeout=180, cwd=tmp_path)
        finished = time.monotonic()
    detail = (f"{result.stdout}\n{result.stderr}\n--- bot log (end) ---\n{bot_log.read_text()[-3000:]}"
              f"\n--- playground log (end) ---\n{playground_log.read_text()[-2000:]}")
    assert result.returncode == 0, detail
    assert "ok: every step passed" in result.stdout, detail
    for name in ("teams-01-card", "teams-02-claimed", "teams-03-resolved"):
        assert (SHOTS / f"{name}.png").stat().st_size > 10_000, name
    bot_text = bot_log.read_text()
    assert "local development mode" in bot_text and "Traceback" not in bot_text, bot_text[-3000:]
    print(f"timings: start {ready - started:.1f} s, browser flow {finished - ready:.1f} s")
