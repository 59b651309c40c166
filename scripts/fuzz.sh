#!/usr/bin/env bash
# Runs every cargo-fuzz (libFuzzer) target in fuzz/ for a bounded time and
# fails on any crash, panic, leak or slow input. Needs a nightly toolchain
# (cargo-fuzz builds with sanitizer flags only nightly accepts) and installs
# cargo-fuzz (prebuilt, from PyPI) into .venv-tools.
#
# Usage: scripts/fuzz.sh [target...]           (default: every target)
#   FUZZ_SECONDS=30    time per target (libFuzzer -max_total_time)
#   FUZZ_TOOLCHAIN=nightly
# Seeds (committed, small): fuzz/seeds/<target>/. What libFuzzer finds goes
# to fuzz/corpus/<target>/ and crashes to fuzz/artifacts/<target>/ (both
# ignored by git); reproduce one with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-30}
toolchain=${FUZZ_TOOLCHAIN:-nightly}

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
# and AddressSanitizer.
cargo "+$toolchain" fuzz build --target-dir "$target_dir"
failed=()
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  echo "fuzz: $target for ${seconds}s"
  # -timeout: an input that takes more than 10 s is a denial of service.
  if ! cargo "+$toolchain" fuzz run --target-dir "$target_dir" "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$seconds" -timeout=10 -print_final_stats=1 2> "artifacts/$target/last-run.log"; then
    failed+=("$target")
    tail -40 "artifacts/$target/last-run.log" >&2
  else
    grep -E '^stat::number_of_executed_units|^Done' "artifacts/$target/last-run.log" | sed "s/^/fuzz: $target: /"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, no crash"
