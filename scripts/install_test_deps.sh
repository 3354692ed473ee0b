#!/usr/bin/env bash
# System packages the test suite needs beyond scripts/install.sh: Debian's Chromium (driven headless by Playwright
# in tests/test_web_demo.py through its executable path; no browser download). Idempotent: returns at once when
# /usr/bin/chromium exists.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  echo "[test-deps] chromium present: $(chromium --version 2>/dev/null | head -1)"
  exit 0
fi
if [[ "$(id -u)" != "0" ]]; then
  echo "[test-deps] chromium is missing; install it with: sudo apt-get install -y chromium" >&2
  exit 1
fi
echo "[test-deps] installing Debian's chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends chromium >/dev/null
echo "[test-deps] $(chromium --version | head -1)"
