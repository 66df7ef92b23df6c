#!/usr/bin/env bash
# Submits a sweep described by a job file (jobs/*.job) as one SLURM job array: task i runs `sfc run`
# (slurm/sfc-run.sbatch) for experiment i, and a second array reduces each task's results file once
# that task has succeeded (aftercorr). Each task writes its own file, named from the experiment name.
#
#   slurm/sweep.sh [--dry-run] [SBATCH_OPTION ...] JOBFILE [--section.key=value ...]
#
# SBATCH options (--option=value form) apply to every run task, after the job file's `sbatch` line;
# trailing overrides apply to every task, after the job file's `set` lines. The job file format is
# described at the top of each file in jobs/. --dry-run prints the tasks and submits nothing.
# Environment: as slurm/submit.sh (SFC_REDUCE=0, SFC_REDUCE_SBATCH_ARGS, SFC_LOG_DIR, SFC_BIN,
# SFC_DEVICE, ...). The task list is written to SFC_LOG_DIR (default results/slurm-logs), NAME-DATE-PID.tasks,
# and read by the jobs when they start: keep it until the sweep is done.
# Prints "tasks N", "tasklist PATH", "run JOBID", "reduce JOBID", then "task I NAME RESULTS" per task.
set -euo pipefail
source "$(dirname "$0")/common.sh"

dry_run=0
if [ "${1:-}" = --dry-run ]; then dry_run=1; shift; fi
[ $# -ge 1 ] || { sed -n '6,6p' "$0" >&2; exit 2; }
split_args "$@"
jobfile=$config
cli_overrides=("${overrides[@]}")
stem=$(basename "${jobfile%.*}")

# --- read the job file ---------------------------------------------------------------------------------
base_config=""
output_template="results/$stem/{name}.h5"
common=()        # --key=value for every task
grid_keys=()     # one entry per grid line
grid_values=()   # its values, space-separated
task_lines=()    # "NAME --key=value ..."
file_sbatch=()
parallel=""
n=0
while IFS= read -r raw || [ -n "$raw" ]; do
  n=$((n + 1))
  line=${raw%%#*}
  read -ra w <<<"$line"
  [ ${#w[@]} -gt 0 ] || continue
  where="$jobfile:$n"
  case ${w[0]} in
    config) [ ${#w[@]} -eq 2 ] || die "$where: config takes one path"; base_config=${w[1]} ;;
    output) [ ${#w[@]} -eq 2 ] || die "$where: output takes one template"; output_template=${w[1]} ;;
    set)
      for kv in "${w[@]:1}"; do
        [[ $kv == *=* ]] || die "$where: set takes section.key=value, got '$kv'"
        common+=("--${kv#--}")
      done
      ;;
    grid)
      [ ${#w[@]} -ge 3 ] || die "$where: grid takes a key and at least one value"
      grid_keys+=("${w[1]#--}")
      grid_values+=("${w[*]:2}")
      ;;
    task)
      [ ${#w[@]} -ge 2 ] || die "$where: task takes a name and section.key=value overrides"
      [[ ${w[1]} =~ ^[A-Za-z0-9._-]+$ ]] || die "$where: task name '${w[1]}' may hold only letters, digits, . _ -"
      t=${w[1]}
      for kv in "${w[@]:2}"; do
        [[ $kv == *=* ]] || die "$where: task overrides are section.key=value, got '$kv'"
        t+=" --${kv#--}"
      done
      task_lines+=("$t")
      ;;
    sbatch) file_sbatch+=("${w[@]:1}") ;;
    parallel) [[ ${w[1]:-} =~ ^[1-9][0-9]*$ ]] || die "$where: parallel takes a positive number"; parallel=${w[1]} ;;
    *) die "$where: unknown keyword '${w[0]}' (config, set, grid, task, output, sbatch, parallel)" ;;
  esac
done <"$jobfile"
[ -n "$base_config" ] || die "$jobfile: no 'config PATH' line"
[ -f "$base_config" ] || die "$jobfile: config $base_config not found (relative to $(pwd))"
[[ $output_template == *"{name}"* ]] || die "$jobfile: the output template must contain {name}"

# A value's part of a task name: LABEL=VALUE names it LABEL, a number N of key a.b is bN, a path its
# file name without extension; other characters become '-'.
label_of() {
  local key=$1 value=$2 l
  if [[ $value == *=* ]]; then l=${value%%=*}
  elif [[ $value =~ ^[0-9.eE+-]+$ ]]; then l=${key##*.}$value
  elif [[ $value == */* ]]; then l=${value##*/}; l=${l%.*}
  else l=$value
  fi
  echo "${l//[^A-Za-z0-9.-]/-}"
}

# --- the tasks: the product of the grid lines, then the task lines -----------------------------------
names=()
args=()
if [ ${#grid_keys[@]} -gt 0 ]; then
  names=("")
  args=("")
  for g in "${!grid_keys[@]}"; do
    key=${grid_keys[$g]}
    read -ra values <<<"${grid_values[$g]}"
    new_names=()
    new_args=()
    for i in "${!names[@]}"; do
      for v in "${values[@]}"; do
        label=$(label_of "$key" "$v")
        [[ $v == *=* ]] && v=${v#*=}
        new_names+=("${names[$i]:+${names[$i]}_}$label")
        new_args+=("${args[$i]} --$key=$v")
      done
    done
    names=("${new_names[@]}")
    args=("${new_args[@]}")
  done
fi
for t in "${task_lines[@]}"; do
  names+=("${t%% *}")
  [[ $t == *" "* ]] && args+=("${t#* }") || args+=("")
done
[ ${#names[@]} -gt 0 ] || die "$jobfile: no tasks (add grid or task lines)"
dupes=$(printf '%s\n' "${names[@]}" | sort | uniq -d | head -n3)
[ -z "$dupes" ] || die "$jobfile: task names repeat ($(echo $dupes)): label the values (LABEL=VALUE)"

find_sfc
logs=$(log_dir)
tasklist="$logs/$stem-$(date +%Y%m%d-%H%M%S)-$$.tasks"
[ $dry_run = 1 ] && tasklist=$(mktemp)
: >"$tasklist"
results=()
for i in "${!names[@]}"; do
  out=${output_template//\{name\}/${names[$i]}}
  read -ra task_args <<<"${args[$i]}"
  merge_overrides "${common[@]}" "${cli_overrides[@]}" "${task_args[@]}" "--output.path=$out"
  # The first task and every `task` line go through sfc's own config check now, not in the queue.
  if [ "$i" = 0 ] || [ "$i" -ge $((${#names[@]} - ${#task_lines[@]})) ]; then
    resolve_output "$base_config" "${merged[@]}" >/dev/null
  fi
  echo "${names[$i]} $base_config ${merged[*]}" >>"$tasklist"
  results+=("$out")
done
count=${#names[@]}
echo "tasks $count"
if [ $dry_run = 1 ]; then
  cat "$tasklist"
  rm -f "$tasklist"
  exit 0
fi
echo "tasklist $tasklist"

array="0-$((count - 1))${parallel:+%$parallel}"
run_id=$(submit --job-name="$stem" --array="$array" --output="$logs/%x-%A_%a.out" \
  "${file_sbatch[@]}" "${sbatch_opts[@]}" "$SFC_SLURM_DIR/sfc-run.sbatch" --task-list "$tasklist")
echo "run $run_id"
if [ "${SFC_REDUCE:-1}" != 0 ]; then
  read -ra reduce_opts <<<"${SFC_REDUCE_SBATCH_ARGS:-}"
  reduce_id=$(submit --job-name="$stem-reduce" --array="0-$((count - 1))" --output="$logs/%x-%A_%a.out" \
    --dependency="aftercorr:$run_id" --kill-on-invalid-dep=yes "${reduce_opts[@]}" \
    "$SFC_SLURM_DIR/sfc-reduce.sbatch" --task-list "$tasklist")
  echo "reduce $reduce_id"
fi
for i in "${!names[@]}"; do echo "task $i ${names[$i]} ${results[$i]}"; done
