#!/usr/bin/env bash
# Prints one hash per shipped scenario and seed: of the JSON report, the event log and the
# block-tree SVG that `powchain sim` writes. A change meant to keep the simulator's behaviour
# must leave every line the same (run it before and after, and compare).
#
#   scripts/sim-fingerprint.sh [BINARY] [SEEDS...]     (default: target/release/powchain, 1 2 3)
#
# With KEEP=DIR, each run's printed report is kept there as SCENARIO-SEED.txt; with
# SCENARIOS="scenarios/a.toml scenarios/b.toml", only those scenarios run.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-target/release/powchain}
shift || true
seeds=${*:-1 2 3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for scenario in ${SCENARIOS:-scenarios/*.toml}; do
  name=$(basename "$scenario" .toml)
  for seed in $seeds; do
    "$binary" sim --scenario "$scenario" --seed "$seed" --report "$work/r.json" \
      --events "$work/e.log" --svg "$work/t.svg" >"$work/out.txt" 2>&1 || true
    hash=$(cat "$work/r.json" "$work/e.log" "$work/t.svg" | sha256sum | cut -c1-16)
    checks="$(grep -c "^  ok " "$work/out.txt" || true) ok, $(grep -ci "^  fail" "$work/out.txt" || true) failed"
    if [ -n "${KEEP:-}" ]; then
      mkdir -p "$KEEP" && cp "$work/out.txt" "$KEEP/$name-$seed.txt"
    fi
    echo "$name seed $seed $hash ($checks)"
  done
done
