#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver for the dashboard's browser
# test (cli/tests/dashboard_browser.rs drives headless Chromium through
# chromedriver). Idempotent: nothing happens when both are on the PATH.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver
command -v chromium && command -v chromedriver
