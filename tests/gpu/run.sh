#!/usr/bin/env bash
# The one script a GPU host runs, from the repository root: sets up what tests/gpu/prepare.sh carried in
# .gpu-prep/ (or builds from source), runs the gpu-labelled tests, compute-sanitizer's memcheck over them,
# Lathe's benchmarks and the PyTorch reference on the same device, and writes the side-by-side report.
#
# Usage: tests/gpu/run.sh [--quick] [RESULTS_DIR]      (RESULTS_DIR defaults to $OUT, else build/gpu-results)
#   full run: at most 8 minutes (LATHE_GPU_BUDGET_S=480); --quick: 3 minutes (tests, short benchmarks,
#   a 10,000-image epoch, no sanitizer, no 8192^3 GEMMs).
# Every file it writes goes into RESULTS_DIR (summary.txt first); report.md is also merged into
# docs/benchmarks/gpu.md. See tests/gpu/README.md for the variables.
set -u

quick=0
RESULTS=
for arg in "$@"; do
    case "$arg" in
    --quick) quick=1 ;;
    -h | --help)
        sed -n '2,10p' "$0"
        exit 0
        ;;
    -*)
        echo "usage: $0 [--quick] [RESULTS_DIR]" >&2
        exit 2
        ;;
    *) RESULTS=$arg ;;
    esac
done
RESULTS=${RESULTS:-${OUT:-build/gpu-results}}

ROOT=$(pwd)
PREP=${LATHE_GPU_PREP:-.gpu-prep}
BUILD=${LATHE_GPU_BUILD:-build/gpu-prep}
ARCH=${LATHE_CUDA_ARCHITECTURES:-90}
JOBS=${JOBS:-$(nproc)}
PYTHON=${PYTHON:-python3}
if ((quick)); then BUDGET=${LATHE_GPU_BUDGET_S:-180}; else BUDGET=${LATHE_GPU_BUDGET_S:-480}; fi

mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
SUMMARY=$RESULTS/summary.txt
: >"$SUMMARY"
failed=0

note() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME CAP_S LOG CMD...: runs CMD under `timeout` (CAP_S, or less when the budget is nearly spent), output
# to RESULTS/LOG, and records its exit code and seconds in summary.txt (124/137: timed out).
step() {
    local name=$1 cap=$2 log=$3
    shift 3
    local left=$((BUDGET - SECONDS))
    if ((left < 10)); then
        note "$(printf '%-24s not run: the budget of %ss is spent' "$name" "$BUDGET")"
        failed=1
        return 1
    fi
    ((cap > left)) && cap=$left
    local t0=$SECONDS rc
    if [[ $log == *.json ]]; then # the document alone on stdout; progress and errors beside it
        timeout -k 10 "$cap" "$@" >"$RESULTS/$log" 2>"$RESULTS/${log%.json}.err"
    else
        timeout -k 10 "$cap" "$@" >"$RESULTS/$log" 2>&1
    fi
    rc=$?
    local what="rc $rc"
    ((rc == 124 || rc == 137)) && what="TIMED OUT after ${cap}s"
    note "$(printf '%-24s %-22s %4ss  -> %s' "$name" "$what" $((SECONDS - t0)) "$log")"
    return $rc
}

nvcc=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
# The commit measured: the one prepare.sh built the binaries from, where they were carried (a copied tree's
# own git metadata need not say it); else this checkout's.
commit=$(cat "$PREP/commit" 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo '?')
note "lathe gpu run $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit," \
    "$([[ $quick == 1 ]] && echo quick || echo full), budget ${BUDGET}s"
{
    nvidia-smi 2>&1 || echo "nvidia-smi: not available"
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit,temperature.gpu \
        --format=csv 2>&1 || true
    "$nvcc" --version 2>&1 || echo "nvcc: not found at $nvcc"
    cmake --version 2>&1 | head -1
    "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1
    uname -a
    (. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")
} >"$RESULTS/machine.txt"

# ---- the libraries and data prepare.sh carried: a private sysroot, never unpacked into /
SYSROOT=$ROOT/$PREP/sysroot
HOST_LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-} # for python3: PyTorch keeps the host's own libraries
if compgen -G "$PREP/debs/*.deb" >/dev/null; then
    rm -rf "$SYSROOT"
    mkdir -p "$SYSROOT"
    for deb in "$PREP"/debs/*.deb; do dpkg-deb -x "$deb" "$SYSROOT" 2>>"$RESULTS/setup.log" || dpkg -x "$deb" "$SYSROOT"; done
    libdir=$SYSROOT/usr/lib/x86_64-linux-gnu
    export LD_LIBRARY_PATH=$libdir:$libdir/openblas-pthread:$SYSROOT/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    note "setup: unpacked $(ls "$PREP"/debs/*.deb | wc -l) Debian packages into $PREP/sysroot"
fi
if [[ -s $PREP/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
    export LATHE_FASHION_MNIST_DIR=$ROOT/$PREP/fashion-mnist
fi
DATA=${LATHE_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}

# ---- the binaries: prepare.sh's, where they start here, else a build from source
cli=$BUILD/app/lathe-cli
prebuilt=0
if [[ -s $PREP/build.tar.gz && -s $PREP/source_dir ]]; then
    rm -rf "$BUILD"
    mkdir -p "$BUILD"
    tar -C "$BUILD" -xzf "$PREP/build.tar.gz"
    # The CTest files and run paths name the folder the build was made in: make it lead here.
    made_in=$(cat "$PREP/source_dir")
    made_root=${made_in%/"$BUILD"}
    if [[ $made_root != "$ROOT" && ! -e $made_root ]]; then
        mkdir -p "$(dirname "$made_root")" && ln -s "$ROOT" "$made_root"
    fi
    if "$cli" --version >>"$RESULTS/setup.log" 2>&1; then
        prebuilt=1
        note "setup: prebuilt binaries of commit $(cat "$PREP/commit" 2>/dev/null) start here"
    else
        note "setup: the prebuilt binaries do not start here (setup.log): building from source"
    fi
fi
if ((!prebuilt)); then
    launcher=()
    command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
    deps=()
    if [[ -d $SYSROOT/usr ]]; then
        libdir=$SYSROOT/usr/lib/x86_64-linux-gnu
        # dpkg -x runs no maintainer scripts, so Debian's alternatives links (cblas.h, libblas.so) are missing:
        # name OpenBLAS's own folders, and put the sysroot's headers on the compilers' include path.
        inc="-isystem $SYSROOT/usr/include/x86_64-linux-gnu/openblas-pthread -isystem $SYSROOT/usr/include/x86_64-linux-gnu -isystem $SYSROOT/usr/include"
        deps=(-DCMAKE_PREFIX_PATH="$SYSROOT/usr" -DCMAKE_LIBRARY_PATH="$libdir/openblas-pthread;$libdir"
            -DCMAKE_INCLUDE_PATH="$SYSROOT/usr/include/x86_64-linux-gnu/openblas-pthread;$SYSROOT/usr/include"
            -DBLAS_LIBRARIES="$libdir/openblas-pthread/libopenblas.so" -DCMAKE_CXX_FLAGS="$inc"
            -DCMAKE_CUDA_FLAGS="$inc" -DOPENSSL_ROOT_DIR="$SYSROOT/usr")
    fi
    rm -rf "$BUILD"
    step configure 120 configure.log cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLATHE_TESTS=ON \
        -DLATHE_UI=OFF -DCMAKE_DISABLE_FIND_PACKAGE_Qt6=ON -DCMAKE_CUDA_COMPILER="$nvcc" \
        -DCMAKE_CUDA_ARCHITECTURES="$ARCH" "${deps[@]}" "${launcher[@]}" || failed=1
    mapfile -t gputests < <(ctest --test-dir "$BUILD" -N -L gpu 2>/dev/null | sed -n 's/^ *Test *#[0-9]*: *//p')
    step build 300 build.log cmake --build "$BUILD" -j"$JOBS" --target lathe-cli lathe_cuda "${gputests[@]}" ||
        failed=1
fi

# ---- tests
step ctest-gpu 240 ctest-gpu.log \
    ctest --test-dir "$BUILD" -L gpu -V --timeout 200 --output-junit "$RESULTS/ctest-gpu.xml" || failed=1
step devices 30 devices.txt "$cli" devices || failed=1
"$cli" devices --json >"$RESULTS/devices.json" 2>&1

if ! grep -E '^cuda' "$RESULTS/devices.txt" 2>/dev/null | grep -vq unavailable; then
    note "benchmarks: not run, no usable CUDA device (devices.txt)"
else
    if ((quick)); then
        sizes=1024,4096,1x256x784,256x256x784 reps=(--warmup 5 --repeats 20) int8=4096 wo=4096x4096
        epoch=(--limit 10000)
    else
        sizes=1024,4096,8192,1x256x784,256x256x784 reps=(--warmup 10 --repeats 50) int8=8192 wo=4096x4096,16384x16384
        epoch=()
    fi
    for dt in f32 f16 bf16; do
        step "bench-gemm-$dt" 60 "bench-gemm-$dt.json" "$cli" bench gemm --device cuda --dtype "$dt" --sizes "$sizes" \
            "${reps[@]}" --json || failed=1
    done
    # W8A8 per MLP layer and one square GEMM (batch = in = out); the weight-only GEMV at batch 1 on layers
    # from 4096 x 4096 up (the larger one does not fit the L2).
    step bench-int8 90 bench-int8.json "$cli" bench int8 --device cuda --layers "784x256,256x128,${int8}x${int8}" \
        --batch-sizes "1,256,$int8" "${reps[@]}" --json || failed=1
    step bench-weight-only 90 bench-weight-only.json "$cli" bench weight-only --device cuda --layers "$wo" \
        --batch-sizes 1,16 "${reps[@]}" --json || failed=1
    step bench-mlp 60 bench-mlp.json "$cli" bench mlp --device cuda --batch-sizes 1,32,256 --warmup 50 \
        --repeats 200 --json || failed=1
    step bench-mlp-fused 60 bench-mlp-fused.json "$cli" bench mlp --device cuda --fuse --batch-sizes 1,32,256 \
        --warmup 50 --repeats 200 --json || failed=1
    step bench-mlp-graph 60 bench-mlp-graph.json "$cli" bench mlp --device cuda --fuse --cuda-graph \
        --batch-sizes 1,32,256 --warmup 50 --repeats 200 --json || failed=1
    if [[ -s $DATA/train-images-idx3-ubyte.gz ]]; then
        step train-mlp 90 train-mlp.json "$cli" train --model mlp-784-256-128-10 --dataset "$DATA" --epochs 1 \
            --batch-size 128 --device cuda "${epoch[@]}" --json || failed=1
        step train-cnn 120 train-cnn.json "$cli" train --model cnn-2conv --dataset "$DATA" --epochs 1 \
            --batch-size 128 --device cuda "${epoch[@]}" --json || failed=1
        # Serving's instances, a CUDA stream each: throughput with 1, 2 and 4 instances (serve.batching's summary).
        step serve-instances 90 serve-instances.json env LATHE_FASHION_MNIST_DIR="$DATA" "$cli" run \
            tests/gpu/serve_instances.json --device cuda --db "$RESULTS/serve.sqlite" --cache-dir "$RESULTS/cache" \
            --json || failed=1
    else
        note "train: not run, no Fashion-MNIST at $DATA"
    fi
fi

# ---- PyTorch on the same device, in the same command
torch_args=(--out "$RESULTS/torch.json" --fashion-mnist "$DATA")
((quick)) && torch_args+=(--quick)
step torch-reference 150 torch-reference.log env PYTHONUNBUFFERED=1 LD_LIBRARY_PATH="$HOST_LD_LIBRARY_PATH" \
    "$PYTHON" tests/tools/gpu_reference.py "${torch_args[@]}" || failed=1

# ---- compute-sanitizer memcheck over the gpu tests (full runs; kernels run 10-100x slower under it)
if ((!quick)); then
    sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
    if [[ -n $sanitizer ]]; then
        # Both gpu tests; the Fashion-MNIST epoch is left out under the checker (pointed at an empty folder, it
        # skips itself), the per-step parity cases run. API errors are not reported: the tests provoke some on
        # purpose (an allocation four times the device's memory) and check every call themselves; memcheck
        # judges the kernels' accesses and the leaks.
        empty=$(mktemp -d)
        for t in test_backend_ops test_cuda_training; do
            exe=$(find "$BUILD/tests" -name "$t" -type f | head -1)
            [[ -n $exe ]] || continue
            step "memcheck-$t" 120 "memcheck-$t.log" env LATHE_FASHION_MNIST_DIR="$empty" "$sanitizer" \
                --tool memcheck --leak-check full --report-api-errors no --error-exitcode 99 "$exe" || failed=1
        done
    else
        note "memcheck: compute-sanitizer not found"
    fi
fi

# ---- Nsight Compute on the kernels the targets judge (full runs): the INT8 GEMM against the FP16 one at 8192^3,
# and the batch-1 INT4 GEMV on 16384 x 16384; one launch each, clocks as found (--clock-control none). The
# GEMMs take cuBLASLt's first heuristic choice here (LATHE_CUDA_GEMM_TRIALS=0), so the one launch profiled is
# the algorithm the heuristic picks rather than a plan-time trial; -s 1 skips the int8 GEMV to the int4 one.
if ((!quick)) && grep -E '^cuda' "$RESULTS/devices.txt" 2>/dev/null | grep -vq unavailable; then
    ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
    if [[ -n $ncu ]]; then
        prof=(env LATHE_CUDA_GEMM_TRIALS=0 "$ncu" --clock-control none --section SpeedOfLight --section LaunchStats --section Occupancy -c 1)
        step ncu-int8 60 ncu-int8.txt "${prof[@]}" -k 'regex:s8|i8|imma|igmma' "$cli" bench int8 --device cuda \
            --layers 8192x8192 --batch-sizes 8192 --warmup 0 --repeats 1 --rotate 1
        step ncu-f16 60 ncu-f16.txt "${prof[@]}" -k 'regex:gemm|xmma|cutlass|sm90' "$cli" bench gemm --device cuda \
            --dtype f16 --sizes 8192 --warmup 0 --repeats 1 --rotate 1
        step ncu-gemv 90 ncu-gemv.txt "${prof[@]}" -s 1 -k 'regex:weight_only_gemv' "$cli" bench weight-only \
            --device cuda --layers 16384x16384 --batch-sizes 1 --warmup 0 --repeats 1 --rotate 1
    else
        note "ncu: not found"
    fi
fi

# ---- the report: RESULTS/report.md, and its section of docs/benchmarks/gpu.md
step report 30 report.log env LD_LIBRARY_PATH="$HOST_LD_LIBRARY_PATH" "$PYTHON" tests/gpu/report.py --results "$RESULTS" --markdown docs/benchmarks/gpu.md ||
    failed=1
grep -hE '^(PASS|FAIL|SKIP) |^ *[0-9]+/[0-9]+ Test|tests passed|ERROR SUMMARY' \
    "$RESULTS/ctest-gpu.log" "$RESULTS"/memcheck-*.log >>"$SUMMARY" 2>/dev/null
note "total ${SECONDS}s, $([[ $failed == 0 ]] && echo ok || echo 'FAILED (see the logs above)')"
exit $failed
