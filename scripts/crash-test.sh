#!/usr/bin/env bash
# kill -9 crash test at scale. Two runs of ITERATIONS kills each:
# - `powchain mine` writing a database;
# - `powchain node` syncing a chain from a peer, then reorganising onto a heavier branch.
# After each kill the database is reopened: every announced block (or tip) must be there, and
# the state must equal a replay of the chain.
#
#   scripts/crash-test.sh [ITERATIONS] [SEED]     (default 500 kills each, seed 1)
set -euo pipefail
cd "$(dirname "$0")/.."
iterations="${1:-500}"
seed="${2:-1}"
POWCHAIN_CRASH_ITERATIONS="$iterations" POWCHAIN_SYNC_CRASH_ITERATIONS="$iterations" \
  POWCHAIN_CRASH_SEED="$seed" \
  cargo test --release -p powchain --test crash -- --nocapture
