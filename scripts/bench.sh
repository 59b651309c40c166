#!/usr/bin/env bash
# Benchmarks of the core (criterion; reports in target/criterion). Bench
# builds are optimised: they take a while the first time.
set -euo pipefail
cd "$(dirname "$0")/.."

# `cartback dev` (release) over loopback against the SQLite ceiling, then
# latency at fixed arrival rates: one table, and target/bench/load.json.
# Sizes: LOAD_EVENTS, LOAD_CONNECTIONS, LOAD_EDIT_CARTS, LOAD_RATES,
# LOAD_LATENCY_SECONDS (see shared/local/benches/load.rs). Built with the
# release profile, the binary's own, so both share one build.
cargo build --release -p cartback --bin cartback
timeout 1800 cargo bench --profile release -p cartback-local --bench load

# One decision of the engine on a typical cart.
cargo bench -p cartback-core --bench engine -- --quick
# A Shopify checkout webhook verified, mapped and ingested on SQLite: webhooks per second on one core.
cargo bench -p cartback-local --bench sources -- --quick
# The backtest's replay of 10,000 synthetic carts, then one timed run over a million (one core).
cargo bench -p cartback-core --bench backtest -- --quick
BACKTEST_CARTS=1000000 cargo bench -p cartback-core --bench backtest

# Loading the history a backtest replays, at a million realistic carts (3-6
# events, 1-4 items; inputs built once under the target directory, a few GB):
# the SQLite store as `--data` reads it, DynamoDB Scan items decoded as
# `--aws` decodes them, a JSON Lines export as `--events` reads it; each
# beside the way it was read before (`*-before`), then load and replay
# together. One process per mode (its own peak memory); each bounded.
carts="${HISTORY_CARTS:-1000000}"
cargo bench -p cartback-tests --bench history_load --no-run
for mode in sqlite-before sqlite dynamo-before dynamo jsonl-before jsonl replay; do
  HISTORY_LOAD="$mode" HISTORY_CARTS="$carts" timeout 1800 \
    cargo bench -p cartback-tests --bench history_load 2>&1 | grep -E "^(built|$mode|replay)"
done

# The Lambda bootstraps (issue 17 item 5): sizes as deployed (arm64, the
# `lambda` profile), then the init time of each beside a hello-world
# `lambda_runtime` function, all built for this machine with the same
# profile: process start to the first `GET /runtime/invocation/next` against
# a Runtime API emulator, init's AWS calls answered by moto on loopback.
scripts/build-lambdas.sh arm64 lambda
host_lambdas="${CARGO_TARGET_DIR:-$PWD/target}/lambda-host"
functions=()
for f in $(ls functions) hello-lambda; do functions+=(-p "$f"); done
PATH="$PWD/.venv-tools/bin:$PATH" cargo lambda build --profile lambda --target "$(rustc -vV | sed -n 's/^host: //p')" --lambda-dir "$host_lambdas" "${functions[@]}"
LAMBDA_INIT_DIR="$host_lambdas" cargo bench -p cartback-tests --bench lambda_init
