# Helpers shared by the submitters (submit.sh, sweep.sh, scaling.sh), sourced on the submit host.
# Not used by the *.sbatch scripts: SLURM runs a copy of those from its spool folder, so they stand alone.

SFC_SLURM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "$(basename "$0"): $*" >&2; exit 2; }

# find_sfc: sets SFC_BIN (as the *.sbatch scripts look for it) and exports it, so jobs use the same binary.
find_sfc() {
  if [ -z "${SFC_BIN:-}" ]; then
    SFC_BIN=$(command -v sfc || true)
    local b
    for b in build/cluster/src/sfc build/dev/src/sfc; do [ -n "$SFC_BIN" ] || { [ -x "$b" ] && SFC_BIN=$b; }; done
  fi
  { [ -n "${SFC_BIN:-}" ] && [ -x "$SFC_BIN" ]; } || die "no sfc binary: set SFC_BIN (looked for sfc on PATH, build/cluster/src/sfc, build/dev/src/sfc)"
  # Absolute, so a job started from another folder finds it too.
  case $SFC_BIN in /*) ;; */*) SFC_BIN=$(cd "$(dirname "$SFC_BIN")" && pwd)/$(basename "$SFC_BIN") ;; esac
  export SFC_BIN
}

# split_args ARG...: sbatch options (--opt=value form) up to the first argument that is not an option,
# which is CONFIG; the rest are overrides. Sets sbatch_opts, config, overrides.
split_args() {
  sbatch_opts=()
  config=""
  overrides=()
  while [ $# -gt 0 ]; do
    case $1 in
      --) shift; break ;;
      -*) sbatch_opts+=("$1"); shift ;;
      *) break ;;
    esac
  done
  [ $# -ge 1 ] || die "no CONFIG given (sbatch options come first, written --option=value)"
  config=$1
  shift
  overrides=("$@")
  [ -f "$config" ] || die "config $config not found (relative to $(pwd))"
}

# merge_overrides ARG...: sets merged, the last --key=value per key (sfc refuses a key given twice).
merge_overrides() {
  local -A at=()
  local a k
  merged=()
  for a in "$@"; do
    k=${a%%=*}
    if [ -n "${at[$k]+x}" ]; then merged[${at[$k]}]=$a; else at[$k]=${#merged[@]}; merged+=("$a"); fi
  done
}

# resolve_output CONFIG [OVERRIDE...]: prints output.path as sfc resolves it; fails on a bad config.
resolve_output() {
  local config=$1 out
  shift
  out=$("$SFC_BIN" run --config "$config" "$@" --print-config | sed -n '/^\[output\]/,/^\[/s/^path = //p' | head -n1) || true
  [ -n "$out" ] || die "$SFC_BIN run --config $config $* --print-config failed (see above)"
  echo "$out"
}

# log_dir: where the job logs go (SFC_LOG_DIR, default results/slurm-logs), created now: SLURM does not.
log_dir() {
  local d=${SFC_LOG_DIR:-results/slurm-logs}
  mkdir -p "$d"
  echo "$d"
}

# submit ARG...: sbatch --parsable ARG..., prints the job id (without a cluster name).
submit() {
  local id
  id=$(sbatch --parsable "$@") || die "sbatch $* failed"
  echo "${id%%;*}"
}
