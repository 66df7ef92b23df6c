#!/usr/bin/env bash
# Submits one `sfc run` job (slurm/sfc-run.sbatch) and a `sfc reduce` job that starts when the run has
# succeeded (afterok; SLURM removes it if the run fails). Run from the repository root, or any folder
# the config's relative paths are relative to: that folder is the jobs' working directory.
#
#   slurm/submit.sh [SBATCH_OPTION ...] CONFIG [--section.key=value ...]
#
# SBATCH options come first, written --option=value; the first other argument is CONFIG. Examples:
#   GPU: slurm/submit.sh --nodes=2 --ntasks-per-node=4 --gpus-per-node=4 --cpus-per-task=8 \
#          --time=08:00:00 --partition=gpu configs/my-study.ini --ig.steps=32
#   CPU: SFC_DEVICE=cpu slurm/submit.sh --ntasks=2 configs/gemma2-tiny.ini --output.path=results/t.h5
# Environment: SFC_REDUCE_SBATCH_ARGS (options of the reduce job only, split on spaces, e.g.
# "--partition=cpu --time=00:30:00"; it gets --ntasks=1 otherwise), SFC_REDUCE=0 (no reduce job),
# SFC_LOG_DIR (job logs, default results/slurm-logs), and those of slurm/sfc-run.sbatch (SFC_BIN, SFC_DEVICE,
# SFC_LAUNCHER, ...), which the jobs inherit.
# Prints "run JOBID", "reduce JOBID", "results PATH" and "log PATH", one per line.
set -euo pipefail
source "$(dirname "$0")/common.sh"

[ $# -ge 1 ] || { sed -n '6,11p' "$0" >&2; exit 2; }
split_args "$@"
find_sfc
results=$(resolve_output "$config" "${overrides[@]}")
logs=$(log_dir)
name=sfc-$(basename "${config%.*}")

run_id=$(submit --job-name="$name" --output="$logs/%x-%j.out" "${sbatch_opts[@]}" \
  "$SFC_SLURM_DIR/sfc-run.sbatch" "$config" "${overrides[@]}")
echo "run $run_id"
if [ "${SFC_REDUCE:-1}" != 0 ]; then
  read -ra reduce_opts <<<"${SFC_REDUCE_SBATCH_ARGS:-}"
  reduce_id=$(submit --job-name="$name-reduce" --output="$logs/%x-%j.out" \
    --dependency="afterok:$run_id" --kill-on-invalid-dep=yes "${reduce_opts[@]}" \
    "$SFC_SLURM_DIR/sfc-reduce.sbatch" "$results")
  echo "reduce $reduce_id"
fi
echo "results $results"
echo "log $logs/$name-$run_id.out"
