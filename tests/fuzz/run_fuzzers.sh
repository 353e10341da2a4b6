#!/usr/bin/env bash
# Builds the libFuzzer targets (the `fuzz` CMake preset: clang, -fsanitize=fuzzer,address) and runs
# each for SECONDS, one after another (PARALLEL=1: all at once), starting from the committed seed corpus.
#   tests/fuzz/run_fuzzers.sh SECONDS [FUZZER...]     (FUZZER: idx, safetensors, experiment)
# New inputs go to build/fuzz/corpus/<name>/, crashes to build/fuzz/artifacts/, logs to build/fuzz/logs/.
# Exits non-zero when a fuzzer found a crash. JOBS=N builds with N jobs (default 2).
set -euo pipefail

seconds=${1:?usage: run_fuzzers.sh SECONDS [idx|safetensors|experiment ...]}
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build/fuzz
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  names=(idx safetensors)
  [ -f "$root/engine/experiment/spec.cpp" ] && names+=(experiment)
fi

# Longest input per fuzzer: enough for a header, a few tensors or a gzip stream that inflates far.
declare -A max_len=([idx]=4096 [safetensors]=4096 [experiment]=8192)

cd "$root"
echo "== configuring and building: ${names[*]/#/fuzz_}"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "${JOBS:-2}" --target "${names[@]/#/fuzz_}"

mkdir -p "$build/artifacts" "$build/logs"
run_one() {
  local name=$1 work=$build/corpus/$1 log=$build/logs/$1.log
  mkdir -p "$work"
  echo "== fuzz_$name for ${seconds}s (max_len ${max_len[$name]}), log: $log"
  # malloc_limit_mb: a single allocation over 256 MB is a bug for inputs of a few KB.
  "$build/tests/fuzz/fuzz_$name" "$work" "$root/tests/fuzz/corpus/$name" \
    -max_total_time="$seconds" -max_len="${max_len[$name]}" -rss_limit_mb=2048 -malloc_limit_mb=256 \
    -timeout=10 -print_final_stats=1 -artifact_prefix="$build/artifacts/$name-" >"$log" 2>&1
}

report() {
  local name=$1 rc=$2
  echo "== fuzz_$name: exit $rc"
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs)" "$build/logs/$name.log" || true
  if [ "$rc" -ne 0 ]; then
    echo "!! fuzz_$name exited with $rc; see $build/logs/$name.log and $build/artifacts/"
    status=1
  fi
}

status=0
if [ "${PARALLEL:-0}" = 1 ]; then
  declare -A pids
  for name in "${names[@]}"; do run_one "$name" & pids[$name]=$!; done
  for name in "${names[@]}"; do
    rc=0; wait "${pids[$name]}" || rc=$?
    report "$name" "$rc"
  done
else
  for name in "${names[@]}"; do
    rc=0; run_one "$name" || rc=$?
    report "$name" "$rc"
  done
fi
exit $status
