#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, with AddressSanitizer, and
# prints a table: target, executions, new corpus inputs, crashes. Exits 1 if any target
# crashed; the crashing input is in fuzz/artifacts/<target>/ (replay it with
# `cargo fuzz run <target> fuzz/artifacts/<target>/<file>`).
#
#   scripts/fuzz.sh            # 60 s per target
#   scripts/fuzz.sh 3600 block # an hour on the block target
#   scripts/fuzz.sh 5          # the CI smoke run
#
# The committed seeds (fuzz/corpus/<target>, written by
# `cargo run -p powchain-protocol --example fuzz_corpus -- fuzz/corpus`) are read, never
# written; what the fuzzer finds goes to fuzz/target/corpus/<target>, kept between runs.
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain the sanitizer flags
# are allowed through RUSTC_BOOTSTRAP=1, as they are on nightly.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
if ! rustc --version | grep -q nightly; then
  export RUSTC_BOOTSTRAP=1
fi

mkdir -p target
if ! cargo fuzz build --release >target/fuzz-build.log 2>&1; then
  tail -40 target/fuzz-build.log
  exit 1
fi

failed=0
printf '%-12s %14s %10s %8s\n' target executions "new inputs" crashes
for target in "${targets[@]}"; do
  work="target/corpus/$target"
  mkdir -p "$work" "corpus/$target"
  log="target/fuzz-$target.log"
  status=0
  cargo fuzz run --release "$target" "$work" "corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
  runs=$(grep -oE '^Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' || true)
  if [ -z "$runs" ]; then
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  fi
  new=$(grep -oE 'stat::new_units_added: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  crashes=0
  if [ "$status" -ne 0 ]; then
    crashes=1
    failed=1
  fi
  printf '%-12s %14s %10s %8s\n' "$target" "$runs" "$new" "$crashes"
  if [ "$crashes" -ne 0 ]; then
    echo "--- $target crashed; the end of its log ($log):"
    tail -30 "$log"
  fi
done
exit "$failed"
