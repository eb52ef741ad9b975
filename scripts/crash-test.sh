#!/usr/bin/env bash
# kill -9 crash test at scale: runs `powchain mine` into a database, kills it at random
# moments, reopens the database and checks that every announced block is there and that the
# state equals a replay of the chain.
#
#   scripts/crash-test.sh [ITERATIONS] [SEED]     (default 500 kills, seed 1)
set -euo pipefail
cd "$(dirname "$0")/.."
iterations="${1:-500}"
seed="${2:-1}"
POWCHAIN_CRASH_ITERATIONS="$iterations" POWCHAIN_CRASH_SEED="$seed" \
  cargo test --release -p powchain --test crash -- --nocapture
