#!/usr/bin/env bash
# Builds .venv-tempest: tempest, octavia-tempest-plugin and a Keystone to run them against
# (pinned; kept apart from .venv so OpenStack's dependency pins never touch Shoal's).
set -euo pipefail
VENV=${TEMPEST_VENV:-.venv-tempest}
STAMP="$VENV/.stamp-v1"
[ -e "$STAMP" ] && exit 0
test -x "$VENV/bin/python" || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q \
    'tempest==47.0.0' 'octavia-tempest-plugin==3.5.0' 'keystone==30.0.0' 'stestr'
touch "$STAMP"
