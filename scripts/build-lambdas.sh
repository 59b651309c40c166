#!/usr/bin/env bash
# Builds the Lambda `bootstrap` of every function crate with cargo-lambda and
# prints their sizes.
# Usage: scripts/build-lambdas.sh [arm64|x86_64] [profile]
#   arm64 (default) falls back to x86_64 when the aarch64 Rust target cannot
#   be installed.
#   profile: `lambda` (default: what is deployed; release, fat LTO, one
#   codegen unit, panic = abort, stripped) or `ci-lambda` (the CI: proves the
#   cross-compilation in a fraction of the time; sizes a little larger).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/python-tools.sh tools
export PATH="$PWD/.venv-tools/bin:$PATH"

arch=${1:-arm64}
profile=${2:-lambda}
if [ "$arch" = arm64 ] && ! rustup target list --installed 2>/dev/null | grep -q '^aarch64-unknown-linux-gnu$'; then
  if ! rustup target add aarch64-unknown-linux-gnu >&2; then
    echo "aarch64 target unavailable: building x86_64 instead" >&2
    arch=x86_64
  fi
fi
flag=--arm64; [ "$arch" = x86_64 ] && flag=--x86-64

functions=$(ls functions)
packages=()
for f in $functions; do packages+=(-p "$f"); done
cargo lambda build --profile "$profile" "$flag" "${packages[@]}"

echo "bootstrap sizes ($arch, profile $profile):"
for f in $functions; do
  file="${CARGO_TARGET_DIR:-target}/lambda/$f/bootstrap"
  [ -f "$file" ] || { echo "missing $file" >&2; exit 1; }
  file "$file" 2>/dev/null | grep -q -i "$( [ "$arch" = arm64 ] && echo aarch64 || echo x86-64)" || { echo "$file is not an $arch binary" >&2; exit 1; }
  bytes=$(stat -c %s "$file")
  awk -v f="$f" -v b="$bytes" 'BEGIN { printf "  %-12s %5.1f MB (%d bytes)\n", f, b / 1e6, b }'
done
