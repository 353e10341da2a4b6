#!/usr/bin/env bash
# One cluster test: starts a one-node Slurm in a temporary folder (slurm_cluster.sh), runs CASE against
# it with lathe-cli, and always stops the daemons (trap, a deadline of its own below CTest's timeout,
# and the cluster's guard should this shell be killed). Exit 77 (skipped) without root, slurm-wlm and
# munge, or without Fashion-MNIST for the cases that train.
#
#   LATHE_CLI=build/default/app/lathe-cli tests/cluster/run_case.sh sweep|cancel|requeue|merge|errors|dry-run|search
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
case_name=${1:?usage: run_case.sh CASE}
cli=${LATHE_CLI:?set LATHE_CLI to the lathe-cli to test}
deadline=${LATHE_CLUSTER_DEADLINE_S:-200}
data=${LATHE_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
source "$here/slurm_cluster.sh"

fail() {
    echo "FAIL ($case_name): $*" >&2
    exit 1
}
skip() {
    echo "SKIP ($case_name): $*"
    exit 77
}
check() { # DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then echo "ok: $what"; else fail "$what"; fi
}

work=$(mktemp -d /tmp/lathe-cluster-XXXXXX)
chmod 0755 "$work"
cleanup() {
    local rc=$?
    trap - EXIT TERM INT
    [[ -n ${watchdog:-} ]] && kill "$watchdog" 2>/dev/null
    if [[ -f $work/cluster/slurm.conf ]]; then
        if ((rc != 0 && rc != 77)); then
            echo "--- slurmctld/slurmd logs (last lines) ---" >&2
            tail -n 15 "$work/cluster/log/slurmctld.log" "$work/cluster/log/slurmd.log" >&2 2>/dev/null
            for f in "$work"/target/*/logs/*.out; do [[ -f $f ]] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
        fi
        cluster_stop "$work/cluster"
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "FAIL ($case_name): stopped (signal or the ${deadline} s deadline)" >&2; exit 1' TERM INT
# One-second sleeps, output to /dev/null: once killed it holds no pipe of CTest's and is gone in a second.
# Bash runs the TERM trap only once the command it waits for has ended, so the watchdog also stops this
# shell's other children (the program under test, a lathe-cli, a sleep): the trap runs at once and the
# cleanup prints the daemons' logs and stops them, well before CTest's own timeout.
(
    for ((i = 0; i < deadline; i++)); do sleep 1; done
    kill -TERM $$
    for child in $(pgrep -P $$); do [[ $child != "$BASHPID" ]] && kill -TERM "$child"; done
) >/dev/null 2>&1 &
watchdog=$!

export XDG_CACHE_HOME=$work/cache # baselines of these tests never mix with the user's
export XDG_CONFIG_HOME=$work/config # nor does a Slurm settings file of the user's
db=$work/runs.sqlite

# py SCRIPT ARGS...: checks on the run store through Python's sqlite3 (no sqlite3 program needed).
py() { python3 - "$@"; }

needs_cluster() {
    local why
    why=$(cluster_missing) && skip "$why"
    command -v python3 >/dev/null || skip "python3 is not installed"
    cluster_start "$work/cluster" || fail "the one-node cluster did not start"
}
needs_data() {
    [[ -f $data/t10k-images-idx3-ubyte || -f $data/t10k-images-idx3-ubyte.gz ]] || skip "no Fashion-MNIST in $data"
}

# submit FILE ARGS...: prints the submission's JSON (array_job_id, merge_job_id, workdir, uuid).
submit() {
    local file=$1
    shift
    "$cli" submit "$file" --slurm --workdir "$work/target" --db "$db" --time 00:05:00 --json "$@"
}
json_field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# Waits until none of the jobs is pending or running (the merge job is the last).
wait_jobs() {
    local jobs=$1 limit=${2:-150} i
    for ((i = 0; i < limit; i++)); do
        [[ -z $(squeue -h -j "$jobs" -t PENDING,RUNNING,CONFIGURING,COMPLETING,SUSPENDED -o %i 2>/dev/null) ]] && return 0
        sleep 1
    done
    squeue -t all >&2
    return 1
}

case_sweep() {
    needs_data
    needs_cluster
    local sub array merge
    # Each task asks for one CPU: its run's CPU backend takes SLURM_CPUS_PER_TASK threads, not the node's.
    echo "#SBATCH --cpus-per-task=1" >"$work/cpus.sbatch"
    sub=$(submit "$here/tiny_sweep.json" --max-parallel 2 --sbatch-file "$work/cpus.sbatch") || fail "submit"
    echo "$sub"
    array=$(json_field "$sub" array_job_id)
    merge=$(json_field "$sub" merge_job_id)
    # The array runs two at a time (%2): the scheduler never has three tasks running.
    local most=0 n i
    for ((i = 0; i < 150; i++)); do
        n=$(squeue -h -r -j "$array" -t RUNNING -o %i | wc -l)
        ((n > most)) && most=$n
        [[ -z $(squeue -h -j "$array,$merge" -t PENDING,RUNNING,CONFIGURING,COMPLETING -o %i) ]] && break
        sleep 0.5
    done
    wait_jobs "$array,$merge" || fail "the jobs did not finish"
    check "at most 2 tasks ran at once (saw $most)" test "$most" -le 2
    cat "$(json_field "$sub" workdir)/logs/merge.out"
    py "$db" "$array" <<'PY' || fail "the merged runs"
import json, sqlite3, sys
db, array = sys.argv[1], sys.argv[2]
con = sqlite3.connect(db)
rows = con.execute("SELECT name, status, environment_json, uuid FROM runs ORDER BY id").fetchall()
assert len(rows) == 4, f"expected 4 runs, got {len(rows)}: {rows}"
tasks = set()
for name, status, env, uuid in rows:
    assert status == "done", f"{name}: {status}"
    slurm = json.loads(env)["slurm"]
    assert slurm["array_job_id"] == array, slurm
    device = json.loads(env)["device"]
    assert device["threads"] == 1, f"{name}: the CPU backend took {device['threads']} threads, the task asked for 1"
    assert slurm["job_id"] and slurm["node"], slurm
    tasks.add(int(slurm["array_task_id"]))
    assert len(uuid) == 36, uuid
assert tasks == {0, 1, 2, 3}, tasks
n = con.execute("SELECT count(DISTINCT experiment_id) FROM runs").fetchone()[0]
assert n == 1, f"the sweep's runs should share one experiment, got {n}"
samples = con.execute("SELECT count(*) FROM samples").fetchone()[0]
assert samples > 0, "no samples merged"
print("4 runs done, one per task of array", array, "with", samples, "samples")
PY
    local jobs
    jobs=$("$cli" jobs --db "$db" --json) || fail "lathe-cli jobs"
    echo "$jobs"
    python3 -c '
import json, sys
j = json.loads(sys.argv[1])[0]
assert (j["tasks"], j["done"], j["failed"], j["pending"], j["running"], j["merged"]) == (4, 4, 0, 0, 0, 4), j
assert j["merge_state"] == "COMPLETED", j' "$jobs" || fail "lathe-cli jobs counts"
    echo "ok: lathe-cli jobs shows 4 done, 4 merged"
}

case_cancel() {
    needs_data
    needs_cluster
    local sub array merge workdir i
    sub=$(submit "$here/cancel_sweep.json") || fail "submit"
    echo "$sub"
    array=$(json_field "$sub" array_job_id)
    merge=$(json_field "$sub" merge_job_id)
    workdir=$(json_field "$sub" workdir)
    # Cancel task 1 once its run is running in its shard (training its 200 epochs).
    wait_running "$workdir/shards/task-1.sqlite" || fail "task 1 never ran"
    sleep 1
    scancel "${array}_1" || fail "scancel ${array}_1"
    echo "cancelled ${array}_1"
    wait_jobs "$array,$merge" || fail "the jobs did not finish"
    cat "$workdir/logs/merge.out"
    py "$db" "$array" <<'PY' || fail "the merged runs"
import json, sqlite3, sys
db, array = sys.argv[1], sys.argv[2]
con = sqlite3.connect(db)
rows = con.execute("SELECT status, error, environment_json FROM runs ORDER BY id").fetchall()
by_task = {int(json.loads(env)["slurm"]["array_task_id"]): (status, error) for status, error, env in rows}
assert len(rows) == 3 and set(by_task) == {0, 1, 2}, rows
assert by_task[0][0] == "done" and by_task[2][0] == "done", by_task
assert by_task[1][0] == "interrupted", by_task[1]
print("tasks 0 and 2 done, the cancelled task 1 interrupted:", by_task[1][1])
PY
    local jobs
    jobs=$("$cli" jobs --db "$db" --json) || fail "lathe-cli jobs"
    echo "$jobs"
    python3 -c '
import json, sys
j = json.loads(sys.argv[1])[0]
assert (j["done"], j["failed"], j["merged"]) == (2, 1, 3), j' "$jobs" || fail "lathe-cli jobs counts"
    echo "ok: lathe-cli jobs shows 2 done, 1 failed, 3 merged"
}

# Waits until the shard's run is `running` (training).
wait_running() {
    local shard=$1 i
    for ((i = 0; i < 120; i++)); do
        if [[ -f $shard ]] && py "$shard" <<'PY' 2>/dev/null; then
import sqlite3, sys
con = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
sys.exit(0 if con.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()[0] else 1)
PY
            return 0
        fi
        sleep 0.5
    done
    return 1
}

case_requeue() {
    needs_data
    needs_cluster
    local sub array merge workdir i state
    sub=$(submit "$here/requeue_sweep.json" --requeue) || fail "submit"
    echo "$sub"
    array=$(json_field "$sub" array_job_id)
    merge=$(json_field "$sub" merge_job_id)
    workdir=$(json_field "$sub" workdir)
    wait_running "$workdir/shards/task-0.sqlite" || fail "task 0 never ran"
    sleep 1
    scontrol requeue "${array}_0" || fail "scontrol requeue ${array}_0"
    echo "requeued ${array}_0"
    # Slurm holds a requeued job back for a while (Reason=BeginTime); let it start again at once.
    for ((i = 0; i < 60; i++)); do
        state=$(squeue -h -r -j "${array}_0" -o %T)
        [[ $state == PENDING ]] && scontrol update JobId="${array}_0" StartTime=now && break
        sleep 0.5
    done
    wait_jobs "$array,$merge" || fail "the jobs did not finish"
    cat "$workdir/logs/task-0.out" "$workdir/logs/merge.out"
    check "the second attempt deleted the first one's half run" grep -q "deleted 1 unfinished run" "$workdir/logs/task-0.out"
    py "$db" "$workdir/shards/task-0.sqlite" <<'PY' || fail "one run, done, from the second attempt"
import json, sqlite3, sys
for path in sys.argv[1:]:
    rows = sqlite3.connect(path).execute("SELECT status, environment_json FROM runs").fetchall()
    assert len(rows) == 1, f"{path}: expected 1 run, got {rows}"
    status, env = rows[0]
    assert status == "done", (path, status)
    assert json.loads(env)["slurm"]["restart_count"] == "1", env
print("one run, done, restart_count 1, in the shard and in the target")
PY
}

case_merge() {
    needs_data
    needs_cluster
    local sub array merge workdir out rc
    sub=$(submit "$here/tiny_sweep.json") || fail "submit"
    array=$(json_field "$sub" array_job_id)
    merge=$(json_field "$sub" merge_job_id)
    workdir=$(json_field "$sub" workdir)
    wait_jobs "$array,$merge" || fail "the jobs did not finish"
    # The merge job merged once; a second merge of the same shards adds nothing.
    out=$("$cli" merge "$workdir"/shards/task-*.sqlite --into "$db" --json) || fail "second merge: $out"
    echo "$out"
    python3 -c '
import json, sys
j = json.loads(sys.argv[1])
assert (j["merged"], j["skipped"], j["broken"]) == (0, 4, 0), j' "$out" || fail "second merge counts"
    py "$db" <<'PY' || fail "no duplicates"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
assert con.execute("SELECT count(*), count(DISTINCT uuid) FROM runs").fetchone() == (4, 4)
print("4 runs after two merges")
PY
    # A corrupt shard: reported, the others merged into a fresh store.
    cp "$workdir/shards/task-2.sqlite" "$work/corrupt.sqlite"
    python3 - "$work/corrupt.sqlite" <<'PY'
import sys
path = sys.argv[1]
with open(path, "r+b") as f:
    f.seek(100)
    f.write(b"\xde\xad\xbe\xef" * 2048)  # the schema page and what follows
PY
    out=$("$cli" merge "$workdir/shards/task-0.sqlite" "$work/corrupt.sqlite" "$workdir/shards/task-1.sqlite" \
        --into "$work/fresh.sqlite" --json)
    rc=$?
    echo "$out"
    check "merge with a corrupt shard exits 1 (got $rc)" test "$rc" -eq 1
    python3 -c '
import json, sys
j = json.loads(sys.argv[1])
assert (j["merged"], j["broken"]) == (2, 1), j
bad = [s for s in j["shards"] if "error" in s]
assert len(bad) == 1 and bad[0]["path"].endswith("corrupt.sqlite"), bad' "$out" || fail "corrupt shard report"
    echo "ok: the corrupt shard reported, the other two merged"
}

case_errors() {
    needs_cluster
    local out rc
    # A partition Slurm rejects: its message quoted, nothing submitted, no work folder left.
    out=$("$cli" submit "$here/tiny_sweep.json" --slurm --partition no-such-partition --workdir "$work/target" \
        --db "$db" 2>&1)
    rc=$?
    echo "$out"
    check "rejected partition exits 2" test "$rc" -eq 2
    check "the message names sbatch and quotes Slurm" grep -q "sbatch --parsable .*failed.*invalid partition" <<<"$out"
    check "nothing submitted" test -z "$(squeue -h -t all -o %i)"
    check "no work folder left" test -z "$(ls -A "$work/target" 2>/dev/null)"
    # A controller that does not answer.
    sed 's/^SlurmctldPort=.*/SlurmctldPort=9/' "$SLURM_CONF" >"$work/dead.conf"
    out=$(SLURM_CONF=$work/dead.conf "$cli" submit "$here/tiny_sweep.json" --slurm --workdir "$work/target" --db "$db" 2>&1)
    rc=$?
    echo "$out"
    check "unreachable controller exits 2" test "$rc" -eq 2
    check "the message quotes Slurm" grep -q "Unable to contact slurm controller" <<<"$out"
    # No sbatch on PATH.
    out=$(PATH=/nonexistent "$cli" submit "$here/tiny_sweep.json" --slurm --workdir "$work/target" --db "$db" 2>&1)
    rc=$?
    echo "$out"
    check "no sbatch exits 2" test "$rc" -eq 2
    check "the message says sbatch is missing" grep -q "sbatch not found on PATH" <<<"$out"
    # A work folder that cannot be created.
    out=$("$cli" submit "$here/tiny_sweep.json" --slurm --workdir /proc/lathe-cannot --db "$db" 2>&1)
    rc=$?
    echo "$out"
    check "unwritable work folder exits 2" test "$rc" -eq 2
    check "the message names the work folder" grep -q "work folder /proc/lathe-cannot" <<<"$out"
    check "still nothing submitted" test -z "$(squeue -h -t all -o %i)"
}

case_dry_run() {
    # Needs no cluster: --dry-run submits nothing and never calls Slurm.
    local out expected
    mkdir -p "$work/config/lathe"
    printf '%s\n' '#SBATCH --mem=2G' '--qos=short' >"$work/extra.sbatch"
    printf '%s\n' 'module load lathe' 'source ~/venvs/lathe/bin/activate' >"$work/prelude.sh"
    out=$(PATH=/nonexistent "$cli" submit "$here/tiny_sweep.json" --slurm --dry-run --partition gpu --account lab \
        --gpus-per-task 1 --time 01:30:00 --max-parallel 2 --requeue --workdir "$work/target" --db "$db" \
        --sbatch-file "$work/extra.sbatch" --prelude "$work/prelude.sh") || fail "submit --dry-run: $out"
    check "nothing written" test ! -e "$work/target"
    # The parts that differ per run (random uuid, paths of this build) become placeholders.
    uuid=$(grep -o -m1 '[0-9a-f]\{8\}-[0-9a-f]\{4\}-4[0-9a-f]\{3\}-[89ab][0-9a-f]\{3\}-[0-9a-f]\{12\}' <<<"$out")
    out=${out//$uuid/@UUID@}
    out=${out//${uuid:0:8}/@UUID8@}
    out=${out//$work/@WORK@}
    out=${out//$cli/@LATHE_CLI@}
    expected=$(cat "$here/expected_dry_run.sbatch")
    if [[ $out != "$expected" ]]; then
        diff <(echo "$expected") <(echo "$out") >&2
        fail "the dry run's scripts differ from tests/cluster/expected_dry_run.sbatch"
    fi
    echo "ok: the dry run prints the expected scripts"
}

# A sweep beside a search: one search per array task, merged with its trials under it (their parent
# ids mapped to the target's).
case_search() {
    needs_data
    needs_cluster
    local sub array merge
    sub=$(submit "$here/search_sweep.json") || fail "submit"
    echo "$sub"
    check "one task per search" test "$(json_field "$sub" tasks)" -eq 2
    array=$(json_field "$sub" array_job_id)
    merge=$(json_field "$sub" merge_job_id)
    wait_jobs "$array,$merge" || fail "the jobs did not finish"
    cat "$(json_field "$sub" workdir)/logs/merge.out"
    py "$db" <<'PY' || fail "the merged searches"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
searches = con.execute("SELECT id, name, status FROM runs WHERE strategy_chain = 'search' ORDER BY name").fetchall()
names = [s[1] for s in searches]
assert names == ["cluster-search [seed=1] (search)", "cluster-search [seed=2] (search)"], searches
for sid, name, status in searches:
    assert status == "done", (name, status)
    trials = con.execute("SELECT status, name FROM runs WHERE parent_run_id = ?", (sid,)).fetchall()
    assert len(trials) == 2 and all(t[0] == "done" for t in trials), (name, trials)
print("2 searches merged, each done with its 2 trials under it")
PY
}

# The window over a real Slurm: test_submissions_view's realSlurm case follows a sweep run one task at a
# time, merges its finished shards midway from the window, releases the tasks held back here, and sees
# the merge job merge the rest. Tasks 2 and 3 are held from the start: the tasks take well under a second,
# and a test that had to catch the window between two of them would depend on timing.
case_window() {
    [[ -n ${LATHE_WINDOW_TEST:-} ]] || skip "LATHE_WINDOW_TEST (the test_submissions_view program) is not set"
    needs_data
    needs_cluster
    local sub array
    sub=$(submit "$here/tiny_sweep.json" --max-parallel 1) || fail "submit"
    echo "$sub"
    array=$(json_field "$sub" array_job_id)
    scontrol hold "${array}_[2-3]" || fail "scontrol hold ${array}_[2-3]"
    QT_QPA_PLATFORM=offscreen LATHE_SLURM_DB=$db LATHE_SLURM_HELD="${array}_[2-3]" "$LATHE_WINDOW_TEST" realSlurm ||
        fail "the window over Slurm"
    wait_jobs "$array,$(json_field "$sub" merge_job_id)" || fail "the jobs did not finish"
    cat "$(json_field "$sub" workdir)/logs/merge.out"
}

case "$case_name" in
sweep) case_sweep ;;
cancel) case_cancel ;;
merge) case_merge ;;
requeue) case_requeue ;;
errors) case_errors ;;
dry-run) case_dry_run ;;
window) case_window ;;
search) case_search ;;
*) fail "unknown case (sweep, cancel, requeue, merge, errors, dry-run, window, search)" ;;
esac
