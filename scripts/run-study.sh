#!/usr/bin/env bash
# The whole study on one machine: `sfc run` with all engines under mpirun (the reduction pass runs at
# its end and writes /summary and the CSV), then the figures of analysis/. Prints where everything is.
#
#   bash scripts/run-study.sh [CONFIG] [--section.key=value ...]
#
# CONFIG defaults to configs/builtin.ini (the built-in agreement model on its 612 test pairs).
# Environment: SFC_RANKS (default 2), SFC_BIN (default build/dev/src/sfc), SFC_PYTHON (default
# /usr/bin/python3, which has Debian's h5py and matplotlib), OPENBLAS_CORETYPE (default: what
# `sfc --version` suggests, if anything). Run from the repository root.
set -euo pipefail

config=${1:-configs/builtin.ini}
shift || true
ranks=${SFC_RANKS:-2}
sfc=${SFC_BIN:-build/dev/src/sfc}
python=${SFC_PYTHON:-/usr/bin/python3}

[ -x "$sfc" ] || { echo "run-study: $sfc not found: build first (cmake --preset dev && cmake --build --preset dev)" >&2; exit 2; }
[ -f "$config" ] || { echo "run-study: config $config not found" >&2; exit 2; }

# OpenBLAS picks generic kernels on CPUs newer than itself (Debian 12's 0.3.21 and e.g. Intel Emerald
# Rapids), 2-3x slower; `sfc --version` names better ones then. OPENBLAS_CORETYPE set by the caller wins.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  core=$("$sfc" --version | sed -n 's/^hint: .*OPENBLAS_CORETYPE=\([A-Za-z0-9]*\).*/\1/p')
  if [ -n "$core" ]; then
    export OPENBLAS_CORETYPE=$core
    echo "run-study: OPENBLAS_CORETYPE=$core (OpenBLAS does not know this CPU's model; see sfc --version)"
  fi
fi

# The results path as sfc resolves it (config file plus overrides).
results=$("$sfc" run --config "$config" "$@" --print-config | sed -n '/^\[output\]/,/^\[/s/^path = //p' | head -n1)
[ -n "$results" ] || { echo "run-study: no output.path in $config" >&2; exit 2; }
mkdir -p "$(dirname "$results")"

# Open MPI: one thread per rank (the ranks share the cores); as root it needs --allow-run-as-root.
mpi_flags=(--oversubscribe)
[ "$(id -u)" = 0 ] && mpi_flags+=(--allow-run-as-root)
OMP_NUM_THREADS=1 mpirun "${mpi_flags[@]}" -np "$ranks" "$sfc" run --config "$config" "$@"

figures="${results%.h5}-figures"
"$python" analysis/plot_study.py "$results" --out "$figures"

echo
echo "run-study: results  $results (schema: docs/results-schema.md)"
echo "run-study: summary  ${results%.h5}.summary.csv (and /summary in the results file)"
echo "run-study: figures  $figures/"
