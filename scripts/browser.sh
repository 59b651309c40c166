#!/usr/bin/env bash
# Installs the Debian packages the end-to-end tests run: chromium and
# chromium-driver (the dashboard, unsubscribe and email browser tests drive
# headless Chromium through chromedriver) and nodejs (the SFCC cartridge's
# basket hooks run under Node in cli/tests/e2e_sources.rs). Idempotent:
# nothing happens when all three are on the PATH.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v node >/dev/null; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver nodejs
command -v chromium && command -v chromedriver && command -v node
