#!/usr/bin/env bash
# Benchmarks of the core (criterion; reports in target/criterion). Bench
# builds are optimised: they take a while the first time.
set -euo pipefail
cd "$(dirname "$0")/.."

# One decision of the engine on a typical cart.
cargo bench -p cartback-core --bench engine -- --quick
# A Shopify checkout webhook verified, mapped and ingested on SQLite: webhooks per second on one core.
cargo bench -p cartback-local --bench sources -- --quick
# The backtest's replay of 10,000 synthetic carts, then one timed run over a million (one core).
cargo bench -p cartback-core --bench backtest -- --quick
BACKTEST_CARTS=1000000 cargo bench -p cartback-core --bench backtest
