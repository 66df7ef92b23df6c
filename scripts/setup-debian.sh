#!/usr/bin/env bash
# Installs everything sfc-errors needs on a fresh Debian 12 machine. Idempotent: re-running is cheap.
# Also builds a static sentencepiece against the system protobuf (see docs/building.md: Debian's shared
# libsentencepiece bundles protobuf-lite 3.14 and crashes any program that also links libtorch).
set -euo pipefail

PREFIX=${SFC_DEPS_PREFIX:-/opt/sfc-deps}
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev
  libopenblas0-openmp   # libtorch's recommended BLAS; without it Debian's reference libblas3 makes every matmul ~6x slower
  libopenmpi-dev openmpi-bin
  libhdf5-openmpi-dev hdf5-tools
  libboost-program-options-dev libgtest-dev
  nlohmann-json3-dev
  libprotobuf-dev protobuf-compiler libzip-dev zlib1g-dev
  python3-h5py python3-matplotlib python3-numpy
  slurmctld slurmd slurm-client munge   # a single-node SLURM for tests/slurm (scripts/slurm-local.sh)
  dpkg-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- static sentencepiece built against the system protobuf ------------------------------------
if [ -f "$PREFIX/sentencepiece/lib/libsentencepiece.a" ]; then
  echo "setup: static sentencepiece present in $PREFIX/sentencepiece"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A private deb-src list made from the machine's own Debian mirror, so the system's apt config stays untouched.
uri=$(sed -n 's/^URIs: //p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
[ -n "$uri" ] || uri=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
mkdir -p "$work/apt/lists/partial"
echo "deb-src $uri $suite main" > "$work/apt/sources.list"
aptopts=(-o Dir::Etc::sourcelist="$work/apt/sources.list" -o Dir::Etc::sourceparts=- -o Dir::State::lists="$work/apt/lists")
apt-get "${aptopts[@]}" update -q
(cd "$work" && apt-get "${aptopts[@]}" source --download-only sentencepiece)
tarball=$(ls "$work"/sentencepiece_*.orig.tar.* | head -n1)
mkdir -p "$work/src" && tar -xf "$tarball" -C "$work/src" --strip-components=1
cmake -S "$work/src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DSPM_USE_BUILTIN_PROTOBUF=OFF -DSPM_ENABLE_SHARED=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
  -DCMAKE_INSTALL_PREFIX="$PREFIX/sentencepiece" >/dev/null
cmake --build "$work/build" -j "$(nproc)" >/dev/null
$SUDO cmake --install "$work/build" >/dev/null
echo "setup: static sentencepiece installed in $PREFIX/sentencepiece"
