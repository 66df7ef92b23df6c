#!/usr/bin/env bash
# Submits a strong-scaling study: the same `sfc run` (same config, same pairs) as one job per node count
# (or per rank count), each writing its own results file whose /timing analysis/plot_scaling.py reads.
#
#   slurm/scaling.sh [--nodes-list=1,2,4,8 | --ranks-list=1,2,4] [SBATCH_OPTION ...] CONFIG [--section.key=value ...]
#
# --nodes-list (default 1,2,4,8): job k gets --nodes=N_k --exclusive; give the tasks per node in the
#   options, e.g. --ntasks-per-node=4 --gpus-per-node=4 (one rank per GPU). Files: <output>-nodesN.h5.
# --ranks-list: job k gets --ntasks=R_k (SLURM places them; for scaling inside one node, or on CPUs).
#   Files: <output>-ranksR.h5.
# <output> is the config's output.path without .h5. SBATCH options come first, written --option=value.
# No reduce jobs: `sfc run` writes /summary itself and the study only needs /timing. Environment as
# slurm/submit.sh. Prints "run JOBID N RESULTS" per job and the plot command for when they are done.
#   e.g. slurm/scaling.sh --nodes-list=1,2,4,8 --ntasks-per-node=4 --gpus-per-node=4 --time=02:00:00 configs/my-study.ini
#        SFC_DEVICE=cpu slurm/scaling.sh --ranks-list=1,2 configs/gemma2-tiny.ini
set -euo pipefail
source "$(dirname "$0")/common.sh"

mode=nodes
counts=1,2,4,8
args=()
for a in "$@"; do
  case $a in
    --nodes-list=*) mode=nodes; counts=${a#*=} ;;
    --ranks-list=*) mode=ranks; counts=${a#*=} ;;
    *) args+=("$a") ;;
  esac
done
[[ $counts =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--$mode-list=$counts: expected positive numbers separated by commas"
[ ${#args[@]} -ge 1 ] || { sed -n '5,5p' "$0" >&2; exit 2; }
split_args "${args[@]}"
find_sfc
base=$(resolve_output "$config" "${overrides[@]}")
base=${base%.h5}
logs=$(log_dir)
stem=$(basename "${config%.*}")

files=()
IFS=, read -ra list <<<"$counts"
for c in "${list[@]}"; do
  out="$base-$mode$c.h5"
  if [ $mode = nodes ]; then shape=(--nodes="$c" --exclusive); else shape=(--ntasks="$c"); fi
  merge_overrides "${overrides[@]}" "--output.path=$out"
  id=$(submit --job-name="$stem-scaling-$mode$c" --output="$logs/%x-%j.out" "${shape[@]}" "${sbatch_opts[@]}" \
    "$SFC_SLURM_DIR/sfc-run.sbatch" "$config" "${merged[@]}")
  echo "run $id $c $out"
  files+=("$out")
done
echo "when done: /usr/bin/python3 analysis/plot_scaling.py ${files[*]} --out $base-scaling"
