"""The sandbox page in a real browser: headless Chromium (Debian's) driven by playwright-core from npm.

Needs node, /usr/bin/chromium (or CHROMIUM) and `npm ci --prefix tests/browser` (scripts/test.sh does it).
Without them the test is skipped, unless SOCIALOPS_REQUIRE_BROWSER=1 (CI), where it fails instead.
Screenshots: artifacts/screenshots/*.png.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.kit.sandbox import POLICY, ROOT, clean_env, running_sandbox

BROWSER_DIR = ROOT / "tests" / "browser"
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is not installed (apt-get install chromium)"
    if not (BROWSER_DIR / "node_modules" / "playwright-core").exists():
        return "playwright-core is not installed (npm ci --prefix tests/browser)"
    return None


@pytest.fixture
def browser_ready() -> None:
    missing = _missing()
    if missing:
        if os.environ.get("SOCIALOPS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SOCIALOPS_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)


def test_the_whole_loop_in_the_browser(browser_ready: None, tmp_path: Path) -> None:
    log = tmp_path / "sandbox.log"
    env = clean_env(SOCIALOPS_SLACK_PACE="0.05", GENERIC_WEBHOOK_SECRET="browser-test-secret")
    with running_sandbox("--no-feed", "--config", str(POLICY), env=env, log=log) as (base, _):
        result = subprocess.run(["node", str(BROWSER_DIR / "sandbox_flow.mjs"), base, str(SHOTS)],
                                env={**os.environ, "GENERIC_WEBHOOK_SECRET": "browser-test-secret",
                                     "CHROMIUM": CHROMIUM},
                                capture_output=True, text=True, timeout=240)
    detail = f"{result.stdout}\n{result.stderr}\n--- sandbox log (end) ---\n{log.read_text()[-3000:]}"
    assert result.returncode == 0, detail
    assert "ok: every step passed" in result.stdout
    for name in ("01-new-case-card", "04-reply-at-the-customer", "06-check-in-at-the-customer", "07-hostile-text"):
        assert (SHOTS / f"{name}.png").stat().st_size > 10_000, name
