#!/usr/bin/env bash
# The run command: sets up a virtual environment with everything SocialOps needs, then starts the bot
# (for Slack when SLACK_* credentials are set, else the local sandbox on http://127.0.0.1:PORT/sandbox).
# Settings come from the environment (see README); the config file from SOCIALOPS_CONFIG or ./socialops.yml.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e .
# With no Slack credentials, app.py starts the sandbox, which brings its own policy: no file needed.
if [ -n "${SLACK_BOT_TOKEN:-}${SLACK_APP_TOKEN:-}" ] && [ "${1:-}" != sandbox ] \
   && [ -z "${SOCIALOPS_CONFIG:-}" ] && [ ! -f socialops.yml ]; then
  cp socialops.example.yml socialops.yml
  echo "socialops: created socialops.yml from socialops.example.yml; put your Slack channel ids in it" >&2
fi
exec .venv/bin/python app.py "$@"
