#!/usr/bin/env bash
# Installs the client libraries tests/clients.rs runs against the server:
# redis-py (pinned in requirements.txt) in a venv at target/clients-venv, and
# ioredis + node-redis (pinned in node/package-lock.json) in node/node_modules.
# Needs python3 with venv and Node.js with npm; exits non-zero if either
# install fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -m venv target/clients-venv
target/clients-venv/bin/pip install -q --disable-pip-version-check -r tests/clients/requirements.txt
(cd tests/clients/node && npm ci --silent --no-audit --no-fund)
echo "client libraries installed: $(target/clients-venv/bin/python -c 'import redis; print("redis-py", redis.__version__)'), node $(node --version)"
