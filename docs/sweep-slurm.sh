#!/usr/bin/env bash
# A sweep over a Slurm cluster: one array task per shard, then one job that merges them.
#
#   sbatch --array=0-15 docs/sweep-slurm.sh experiments/selfish-mining.toml sweep-out
#   # when the array is done (or: sbatch --dependency=afterok:JOBID ...):
#   MERGE=16 sbatch docs/sweep-slurm.sh experiments/selfish-mining.toml sweep-out
#
# Every task runs the tasks of the sweep whose number is its index modulo the array's size
# (`--shard I/N`) on the cores Slurm gave it, and writes its rows to
# OUT/NAME.shard-I-of-N.json on the shared file system. The merge checks that every task of
# the sweep is there exactly once and writes OUT/NAME.csv, .json and .svg: the same bytes
# one machine running the whole sweep writes.
#SBATCH --job-name=powchain-sweep
#SBATCH --cpus-per-task=4
#SBATCH --mem-per-cpu=2G
#SBATCH --time=04:00:00
set -euo pipefail
sweep=${1:?usage: sweep-slurm.sh SWEEP.toml OUT_DIR}
out=${2:?usage: sweep-slurm.sh SWEEP.toml OUT_DIR}
powchain=${POWCHAIN:-powchain}
if [ -n "${MERGE:-}" ]; then
  name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$sweep" | head -1)
  shards=()
  for ((i = 0; i < MERGE; i++)); do
    shards+=("$out/$name.shard-$i-of-$MERGE.json")
  done
  exec "$powchain" sweep "$sweep" --out "$out" --merge "${shards[@]}"
fi
count=${SLURM_ARRAY_TASK_COUNT:?run as an array job: sbatch --array=0-N ...}
index=${SLURM_ARRAY_TASK_ID:?run as an array job}
exec "$powchain" sweep "$sweep" --out "$out" --shard "$index/$count" \
  --jobs "${SLURM_CPUS_PER_TASK:-1}"
