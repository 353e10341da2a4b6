#!/usr/bin/env bash
# The one script a GPU machine runs from the repository root: headless build (no Qt), the gpu-labelled
# tests, `lathe-cli devices` and a short `bench gemm --device cuda`; every output goes under $OUT.
# Usage: tests/gpu/run.sh [all|build|test]   (see tests/gpu/README.md for the variables)
set -u

STEPS=${1:-all}
case "$STEPS" in all | build | test) ;; *)
    echo "usage: $0 [all|build|test]" >&2
    exit 2
    ;;
esac

BUILD=${LATHE_GPU_BUILD:-build/gpu}
OUT=${OUT:-$BUILD/out}
ARCH=${LATHE_CUDA_ARCHITECTURES:-90}
JOBS=${JOBS:-$(nproc)}
BUDGET=${LATHE_GPU_BUDGET_S:-540} # the whole run; each step gets at most what is left of it

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
failed=0

note() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME CAP_S LOG CMD...: runs CMD under `timeout` (CAP_S, or less when the budget is nearly spent),
# output to $OUT/LOG, and records rc and seconds in summary.txt. rc 124/137 = timed out.
step() {
    local name=$1 cap=$2 log=$3
    shift 3
    local left=$((BUDGET - SECONDS))
    if ((left < 10)); then
        note "$name: not run (budget of ${BUDGET}s spent)"
        failed=1
        return 1
    fi
    ((cap > left)) && cap=$left
    local t0=$SECONDS rc
    timeout -k 10 "$cap" "$@" >"$OUT/$log" 2>&1
    rc=$?
    local what="rc $rc"
    ((rc == 124 || rc == 137)) && what="TIMED OUT after ${cap}s"
    note "$(printf '%-22s %-24s %4ss  -> %s' "$name" "$what" $((SECONDS - t0)) "$log")"
    return $rc
}

nvcc=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
note "lathe gpu run $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')," \
    "build $BUILD, sm_$ARCH, -j$JOBS, budget ${BUDGET}s"
{
    nvidia-smi 2>&1 || echo "nvidia-smi: not available"
    "$nvcc" --version 2>&1 || echo "nvcc: not found at $nvcc"
    cmake --version | head -1
} >"$OUT/machine.txt"

if [[ $STEPS != test ]]; then
    launcher=()
    if command -v ccache >/dev/null; then
        launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
    fi
    flags=(-DCMAKE_DISABLE_FIND_PACKAGE_Qt6=ON -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="$ARCH"
        "${launcher[@]}")
    # The headless preset; spelled out where this CMake cannot read CMakePresets.json (older than 3.25).
    step configure 120 configure.log cmake --preset headless -B "$BUILD" "${flags[@]}" ||
        step configure-no-preset 120 configure-no-preset.log cmake -S . -B "$BUILD" -G Ninja \
            -DCMAKE_BUILD_TYPE=Release -DLATHE_TESTS=ON -DLATHE_UI=OFF "${flags[@]}" || failed=1
    # lathe-cli, liblathe_cuda and every test this build defines (all Qt-free here): test name = target.
    mapfile -t tests < <(ctest --test-dir "$BUILD" -N 2>/dev/null | sed -n 's/^ *Test *#[0-9]*: *//p' |
        grep -Fxf <(cmake --build "$BUILD" --target help 2>/dev/null | sed -n 's/: phony$//p'))
    step build 420 build.log cmake --build "$BUILD" -j"$JOBS" --target lathe-cli lathe_cuda "${tests[@]}" ||
        failed=1
fi

if [[ $STEPS != build ]]; then
    cli=$BUILD/app/lathe-cli
    # -V keeps every line a test prints (test_backend_ops: one error-vs-tolerance line per output).
    step ctest-gpu 300 ctest-gpu.log \
        ctest --test-dir "$BUILD" -L gpu -V --timeout 240 --output-junit "$OUT/ctest-gpu.xml" || failed=1
    step devices 30 devices.txt "$cli" devices || failed=1
    step devices-json 30 devices.json "$cli" devices --json || failed=1
    if [[ ! -s $OUT/devices.txt ]]; then
        note "bench gemm --device cuda: not run, lathe-cli devices gave nothing"
    elif grep -E '^cuda' "$OUT/devices.txt" | grep -vq unavailable; then
        for dt in f32 f16 bf16; do
            step "bench-gemm-$dt" 60 "bench-gemm-$dt.txt" "$cli" bench gemm --device cuda --dtype "$dt" \
                --sizes 256,1024,4096,1x256x784,256x256x784 --warmup 10 --repeats 50 || failed=1
        done
        # The quantized GEMMs: W8A8 per MLP layer, and the weight-only GEMV on a 4096 x 4096 layer at batch 1.
        step bench-int8 60 bench-int8.txt "$cli" bench int8 --device cuda --warmup 10 --repeats 50 || failed=1
        step bench-weight-only 90 bench-weight-only.txt "$cli" bench weight-only --device cuda \
            --layers 784x256,4096x4096 --warmup 10 --repeats 50 || failed=1
    else
        note "bench gemm --device cuda: not run, no usable CUDA device (see devices.txt)"
    fi
    # The per-case lines of the mini-runner tests and CTest's verdicts, for a quick read.
    grep -hE '^[0-9]+: (PASS|FAIL|SKIP) |^ *[0-9]+/[0-9]+ Test|tests passed' "$OUT/ctest-gpu.log" >>"$SUMMARY" 2>/dev/null
fi

note "total ${SECONDS}s, $([[ $failed == 0 ]] && echo ok || echo 'FAILED (see the logs above)')"
exit $failed
