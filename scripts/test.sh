#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs (Python
# tools in repo-local virtual environments, the aarch64 Rust target), runs
# every Rust test (unit, contract against SQLite and against the moto AWS
# emulator, end to end), validates the SAM template offline and builds every
# Lambda bootstrap.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

step "installing Python tools (moto, cargo-lambda, SAM CLI, cfn-lint, checkov) in the background"
scripts/python-tools.sh all > target-python-tools.log 2>&1 &
tools_pid=$!

step "building the workspace"
cargo build --workspace --all-features --tests --quiet

step "waiting for the Python tools"
if ! wait "$tools_pid"; then cat target-python-tools.log >&2; exit 1; fi
rm -f target-python-tools.log
export CARTBACK_MOTO_BIN="$PWD/.venv-moto/bin/moto_server"

step "running the tests"
cargo test --workspace --all-features --no-fail-fast

step "validating template.yaml offline"
scripts/validate-template.sh

step "building the Lambda bootstraps"
scripts/build-lambdas.sh arm64

step "done"
