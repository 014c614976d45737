#!/usr/bin/env bash
# Re-makes docs/sandbox.png, the README's picture: starts the sandbox with its sample feed on a spare port,
# lets traffic arrive, then drives the page in headless Chromium (tests/browser, playwright-core).
set -euo pipefail
cd "$(dirname "$0")/.."
port=${SCREENSHOT_PORT:-3999}
[ -d tests/browser/node_modules/playwright-core ] || npm ci --prefix tests/browser --no-audit --no-fund
env -u SLACK_BOT_TOKEN -u SLACK_SIGNING_SECRET -u SLACK_APP_TOKEN .venv/bin/python app.py sandbox --port "$port" \
  >/tmp/socialops-screenshot.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
sleep "${SCREENSHOT_WAIT:-40}"
node tests/browser/readme_screenshot.mjs "http://127.0.0.1:$port" docs/sandbox.png
