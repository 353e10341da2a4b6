#!/usr/bin/env bash
# Prepares, on a Debian 12 machine with the CUDA toolkit (where packaging/quickstart.sh has run), everything
# tests/gpu/run.sh needs on a GPU host that has nvcc, CMake, ninja and PyTorch but no apt, no network and no Qt.
# It all goes into .gpu-prep/ (git-ignored; carried along with the working tree, kept under 64 MiB):
#
#   debs/            the libraries Lathe links that such a host lacks (OpenBLAS, libgfortran, SQLite, zlib,
#                    OpenSSL's libcrypto) and their headers (nlohmann/json, cblas.h, sqlite3.h), as Debian packages
#                    fetched with `apt-get download`; run.sh unpacks them with `dpkg -x` into a private sysroot,
#                    never into /.
#   build.tar.gz     lathe-cli, liblathe_engine, liblathe_cuda and the gpu-labelled tests, built here for sm_90
#                    (headless preset, -DLATHE_UI=OFF) with their CTest files; object files left out. run.sh
#                    uses them when they start on the host and builds from source with the sysroot when not.
#   source_dir       the absolute path the build was made in (CTest files name it; run.sh links it to the host's
#                    checkout when the two differ).
#   fashion-mnist/   the four Fashion-MNIST files (one training epoch of the MLP and the CNN is timed there).
#   manifest.txt     what is in the folder, with sizes and the commit it was built from.
#
# Usage: tests/gpu/prepare.sh [--no-build] [--no-data]
#   LATHE_CUDA_ARCHITECTURES (default 90), JOBS (default nproc), LATHE_GPU_PREP (default .gpu-prep)
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
PREP=${LATHE_GPU_PREP:-.gpu-prep}
ARCH=${LATHE_CUDA_ARCHITECTURES:-90}
JOBS=${JOBS:-$(nproc)}
BUILD=build/gpu-prep
LIMIT_MIB=60 # the carried tree travels with the repository's files; the whole must stay under 64 MiB

build=1
data=1
for arg in "$@"; do
    case "$arg" in
    --no-build) build=0 ;;
    --no-data) data=0 ;;
    *)
        echo "usage: $0 [--no-build] [--no-data]" >&2
        exit 2
        ;;
    esac
done

say() { echo "prepare: $*"; }

mkdir -p "$PREP/debs"
# The runtime libraries of the prebuilt binaries (ldd of lathe-cli and liblathe_engine, less glibc and
# libstdc++, which every CUDA host has) and the -dev packages a build from source needs.
packages=(libopenblas0-pthread libopenblas-pthread-dev libopenblas-dev libgfortran5 libquadmath0
    libsqlite3-0 libsqlite3-dev zlib1g zlib1g-dev nlohmann-json3-dev libssl3 libssl-dev)
say "fetching ${#packages[@]} Debian packages into $PREP/debs"
rm -f "$PREP"/debs/*.deb
# apt's sandbox user cannot write into a root-owned checkout: download in a scratch folder it can reach.
scratch=$(mktemp -d)
chmod 777 "$scratch"
(cd "$scratch" && apt-get download -q "${packages[@]}" >/dev/null 2>"$scratch/apt.err") || {
    cat "$scratch/apt.err" >&2
    rm -rf "$scratch"
    echo "prepare: apt-get download failed (is this Debian 12 with its package lists?)" >&2
    exit 1
}
mv "$scratch"/*.deb "$PREP/debs/"
rm -rf "$scratch"

if ((build)); then
    nvcc=${CUDACXX:-/usr/local/cuda/bin/nvcc}
    [[ -x $nvcc ]] || {
        echo "prepare: no nvcc at $nvcc (set CUDACXX)" >&2
        exit 1
    }
    launcher=()
    command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
    say "configuring $BUILD (headless, sm_$ARCH)"
    cmake --preset headless -B "$BUILD" -DCMAKE_DISABLE_FIND_PACKAGE_Qt6=ON -DCMAKE_CUDA_COMPILER="$nvcc" \
        -DCMAKE_CUDA_ARCHITECTURES="$ARCH" "${launcher[@]}" >/dev/null
    mapfile -t gputests < <(ctest --test-dir "$BUILD" -N -L gpu | sed -n 's/^ *Test *#[0-9]*: *//p')
    say "building lathe-cli, lathe_cuda and ${gputests[*]} with -j$JOBS"
    cmake --build "$BUILD" -j"$JOBS" --target lathe-cli lathe_cuda "${gputests[@]}" >/dev/null
    # The binaries, the libraries beside them and the CTest files; no objects, no CMake internals.
    say "packing $PREP/build.tar.gz"
    (cd "$BUILD" && find . -type f \( -name CTestTestfile.cmake -o -name '*.so*' -o -perm -u+x \) \
        ! -path '*/CMakeFiles/*' ! -name '*.o' ! -name '*.sh' | sort >"$ROOT/$PREP/build.files")
    tar -C "$BUILD" -czf "$PREP/build.tar.gz" -T "$PREP/build.files"
    echo "$ROOT/$BUILD" >"$PREP/source_dir"
    git rev-parse --short HEAD >"$PREP/commit" 2>/dev/null || echo unknown >"$PREP/commit"
else
    rm -f "$PREP/build.tar.gz" "$PREP/build.files" "$PREP/source_dir" "$PREP/commit"
fi

if ((data)); then
    src=${LATHE_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
    if [[ -s $src/train-images-idx3-ubyte.gz ]]; then
        mkdir -p "$PREP/fashion-mnist"
        cp "$src"/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz "$PREP/fashion-mnist/"
    else
        say "no Fashion-MNIST at $src (apt install dataset-fashion-mnist): the epoch timings will be skipped there"
    fi
else
    rm -rf "$PREP/fashion-mnist"
fi

{
    echo "prepared $(date -u +%Y-%m-%dT%H:%M:%SZ) from commit $(cat "$PREP/commit" 2>/dev/null || echo '-')"
    (cd "$PREP" && find . -type f ! -name manifest.txt -printf '%8k KiB  %p\n' | sort -k3)
} >"$PREP/manifest.txt"
total_kib=$(du -sk "$PREP" | cut -f1)
tree_kib=$(git ls-files -z | xargs -0 du -ck 2>/dev/null | tail -1 | cut -f1)
say "$PREP holds $((total_kib / 1024)) MiB; with the tracked tree ($((tree_kib / 1024)) MiB) $(((total_kib + tree_kib) / 1024)) MiB travel"
if (((total_kib + tree_kib) / 1024 > LIMIT_MIB)); then
    echo "prepare: over ${LIMIT_MIB} MiB: leave the dataset out (--no-data)" >&2
    exit 1
fi
