// lathe-cli submit's pieces without a cluster: the sbatch scripts (run by bash with a stand-in
// lathe-cli, so the quoting is checked by a real shell), extra #SBATCH lines and settings files with
// their errors, squeue/sacct parsing and the task counts, and submission through stand-in sbatch and
// scancel programs: a merge job Slurm refuses cancels the array, so nothing is half-submitted. Issue 17.
// Qt-free (mini_test.h).
#include "app/cluster/slurm.h"
#include "engine/store/run_store.h"
#include "tests/support/mini_test.h"
#include "tests/support/test_common.h"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace lathe;
using namespace lathe::cluster;
namespace fs = std::filesystem;

namespace {

int g_counter = 0;
std::string freshDir() {
    const std::string dir = test::tempDir() + "/case" + std::to_string(++g_counter);
    fs::create_directories(dir);
    return dir;
}

void writeExecutable(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
    fs::permissions(path, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
}

std::string readAll(const std::string& path) {
    std::ifstream in(path);
    std::stringstream b;
    b << in.rdbuf();
    return b.str();
}

// The arguments a stand-in lathe-cli was called with, one per line.
SweepJob stubJob(const std::string& dir) {
    SweepJob job;
    job.name = "it's a sweep";
    job.uuid = "0f0e0d0c-0b0a-4908-8706-050403020100";
    job.workdir = dir + "/work dir";
    job.experimentFile = job.workdir + "/experiment.json";
    job.database = dir + "/runs 'main'.sqlite";
    job.latheCli = dir + "/stub-lathe-cli";
    job.tasks = 3;
    writeExecutable(job.latheCli, "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > \"$STUB_ARGS\"\n");
    return job;
}

ProcessResult runScript(const std::string& script, const std::string& dir, const std::vector<std::string>& env) {
    const std::string path = dir + "/script.sbatch";
    std::ofstream(path) << script;
    std::vector<std::string> argv{"env"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.push_back("STUB_ARGS=" + dir + "/args.txt");
    argv.push_back("bash");
    argv.push_back(path);
    return runProcess(argv, 30);
}

} // namespace

TEST_CASE(arrayAndShardNames) {
    CHECK_EQ(arraySpec(4, 2), std::string("0-3%2"));
    CHECK_EQ(arraySpec(1, 0), std::string("0-0"));
    CHECK_EQ(shardPath("/w", 7), std::string("/w/shards/task-7.sqlite"));
}

TEST_CASE(taskScriptRunsItsPlanIntoItsShard) {
    const std::string dir = freshDir();
    const SweepJob job = stubJob(dir);
    SlurmOptions o;
    o.partition = "gpu";
    o.gpusPerTask = 2;
    o.time = "02:00:00";
    o.maxParallel = 8;
    o.extraSbatch = {"#SBATCH --mem=4G"};
    o.prelude = "export FROM_PRELUDE=1\n";
    const std::string script = taskScript(job, o);
    for (const char* line : {"#SBATCH --array=0-2%8\n", "#SBATCH --partition=gpu\n", "#SBATCH --gpus-per-task=2\n",
                             "#SBATCH --time=02:00:00\n", "#SBATCH --no-requeue\n", "#SBATCH --mem=4G\n",
                             "#SBATCH --job-name=lathe-it_s_a_sweep\n"}) {
        ROW(line);
        CHECK(script.find(line) != std::string::npos);
    }
    // Every #SBATCH line comes before the first command, or sbatch ignores it.
    CHECK(script.rfind("#SBATCH") < script.find("set -u"));

    const ProcessResult r = runScript(script, dir, {"SLURM_ARRAY_TASK_ID=2", "SLURM_ARRAY_JOB_ID=41"});
    REQUIRE_MSG(r.exitCode == 0, r.err);
    CHECK(r.out.find("task 2 of job 41") != std::string::npos);
    const std::string expected = "run\n" + job.experimentFile + "\n--plan\n2\n--experiment-uuid\n" + job.uuid +
                                 "\n--task-shard\n--db\n" + shardPath(job.workdir, 2) + "\n";
    CHECK_EQ(readAll(dir + "/args.txt"), expected);

    // Run outside an array, it says so instead of running plan "".
    const ProcessResult bare = runScript(script, dir, {"SLURM_ARRAY_TASK_ID="});
    CHECK(bare.exitCode != 0);
    CHECK_MSG(bare.err.find("job array") != std::string::npos, bare.err);
}

TEST_CASE(mergeScriptMergesEveryShard) {
    const std::string dir = freshDir();
    const SweepJob job = stubJob(dir);
    SlurmOptions o;
    o.requeue = true;
    const std::string script = mergeScript(job, o);
    CHECK(script.find("--gpus") == std::string::npos); // the merge needs no GPU
    const ProcessResult r = runScript(script, dir, {});
    REQUIRE_MSG(r.exitCode == 0, r.err);
    std::string expected = "merge\n";
    for (int t = 0; t < 3; ++t) expected += shardPath(job.workdir, t) + "\n";
    expected += "--into\n" + job.database + "\n";
    CHECK_EQ(readAll(dir + "/args.txt"), expected);
    CHECK(taskScript(job, o).find("#SBATCH --requeue\n") != std::string::npos);
}

TEST_CASE(sbatchLinesFromAFile) {
    const std::string dir = freshDir();
    const std::string good = dir + "/good.sbatch";
    std::ofstream(good) << "# lab defaults\n\n#SBATCH --qos=long\n--constraint=h100\n  -C a100  \n";
    const auto lines = readSbatchLines(good);
    REQUIRE(lines.size() == 3);
    CHECK_EQ(lines[0], std::string("#SBATCH --qos=long"));
    CHECK_EQ(lines[1], std::string("#SBATCH --constraint=h100"));
    CHECK_EQ(lines[2], std::string("#SBATCH -C a100"));
    const std::string bad = dir + "/bad.sbatch";
    std::ofstream(bad) << "#SBATCH --qos=long\nmodule load cuda\n";
    const std::string error = test::errorOf<ConfigError>([&] { readSbatchLines(bad); });
    CHECK_MSG(error.find(bad + ":2:") != std::string::npos && error.find("module load cuda") != std::string::npos, error);
}

TEST_CASE(settingsFile) {
    const std::string dir = freshDir();
    const std::string file = dir + "/slurm.json";
    std::ofstream(file) << R"({"partition": "gpu", "account": "lab", "gpus_per_task": 1, "max_parallel": 4,
        "requeue": true, "workdir": "/scratch/me", "sbatch": ["--qos=long", "#SBATCH --mem=8G"],
        "prelude": ["module load cuda/12", "source ~/env/bin/activate"]})";
    SlurmOptions o;
    CHECK_EQ(loadSlurmSettings(file, o), std::string("/scratch/me"));
    CHECK_EQ(o.partition, std::string("gpu"));
    CHECK_EQ(o.account, std::string("lab"));
    CHECK_EQ(o.gpusPerTask, 1);
    CHECK_EQ(o.maxParallel, 4);
    CHECK(o.requeue);
    REQUIRE(o.extraSbatch.size() == 2);
    CHECK_EQ(o.extraSbatch[0], std::string("#SBATCH --qos=long"));
    CHECK_EQ(o.prelude, std::string("module load cuda/12\nsource ~/env/bin/activate\n"));
    // No file: nothing changes.
    SlurmOptions untouched;
    CHECK_EQ(loadSlurmSettings(dir + "/none.json", untouched), std::string());
    CHECK(untouched.partition.empty());

    struct Bad {
        const char* text;
        const char* pointer;
    };
    for (const Bad& b : {Bad{R"({"gpus_per_task": "two"})", "/gpus_per_task"}, Bad{R"({"sbatch": [1]})", "/sbatch/0"},
                         Bad{R"({"partiton": "gpu"})", "/partiton"}, Bad{"[1, 2]", "expected a JSON object"}}) {
        ROW(b.text);
        std::ofstream(file) << b.text;
        SlurmOptions x;
        const std::string error = test::errorOf<ConfigError>([&] { loadSlurmSettings(file, x); });
        CHECK_MSG(error.find(file) != std::string::npos && error.find(b.pointer) != std::string::npos, error);
    }
}

TEST_CASE(squeueAndSacctParsing) {
    JobStates s;
    parseSqueue("12|0|12_0|COMPLETED\n12|1|12_1|RUNNING\n12|2-4%2|12_[2-4%2]|PENDING\n13|N/A|13|PENDING\n"
                "99|3|99_3|RUNNING\n",
                "12", "13", s);
    CHECK_EQ(s.tasks.size(), std::size_t(5));
    CHECK_EQ(s.tasks[0], std::string("COMPLETED"));
    CHECK_EQ(s.tasks[1], std::string("RUNNING"));
    CHECK_EQ(s.tasks[4], std::string("PENDING"));
    CHECK_EQ(s.merge, std::string("PENDING"));
    JobStates a;
    a.tasks[1] = "RUNNING";
    parseSacct("12_0|COMPLETED\n12_1|CANCELLED by 0\n12_5|TIMEOUT\n13|FAILED\n12_[6-7]|PENDING\n", "12", "13", a);
    CHECK_EQ(a.tasks[0], std::string("COMPLETED"));
    CHECK_EQ(a.tasks[1], std::string("RUNNING")); // squeue's live word wins
    CHECK_EQ(a.tasks[5], std::string("TIMEOUT"));
    CHECK_EQ(a.merge, std::string("FAILED"));
    CHECK(taskStateOf("TIMEOUT") == TaskState::Failed);
    CHECK(taskStateOf("REQUEUED") == TaskState::Pending);
    CHECK(!taskStateOf("SOMETHING_NEW").has_value());
}

TEST_CASE(countsFromSlurmAndShards) {
    const std::string dir = freshDir();
    SubmissionRecord sub;
    sub.uuid = "0f0e0d0c-0b0a-4908-8706-050403020100";
    sub.workdir = dir;
    sub.tasks = 5;
    sub.arrayJobId = "12";
    fs::create_directories(dir + "/shards");
    auto shardWith = [&](int task, const char* status) {
        RunStore s(shardPath(dir, task));
        NewRun nr;
        nr.name = "t" + std::to_string(task);
        const auto id = s.createRun(nr);
        s.startRun(id);
        if (std::string(status) != run_status::kRunning) s.finishRun(id, status);
    };
    shardWith(0, run_status::kDone);
    shardWith(1, run_status::kFailed);
    shardWith(2, run_status::kRunning); // its task is gone from Slurm: killed
    JobStates states;
    states.tasks[3] = "RUNNING";
    states.tasks[4] = "PENDING";
    states.tasks[0] = "COMPLETED";
    states.merge = "PENDING";
    const SweepCounts c = sweepCounts(sub, states, nullptr);
    CHECK_EQ(c.done, 1);
    CHECK_EQ(c.failed, 2);
    CHECK_EQ(c.running, 1);
    CHECK_EQ(c.pending, 1);
    CHECK_EQ(c.mergeState, std::string("PENDING"));
    CHECK_EQ(mergeStateText(c, states), std::string("PENDING"));
    // What the window's "Merge finished shards" merges: the shards of tasks that ended, not the running one.
    CHECK(c.tasks == (std::vector<TaskState>{TaskState::Done, TaskState::Failed, TaskState::Failed, TaskState::Running,
                                             TaskState::Pending}));
    CHECK(finishedShards(sub, c) ==
          (std::vector<std::string>{shardPath(dir, 0), shardPath(dir, 1), shardPath(dir, 2)}));
    // Slurm could not be asked: a run still running in its shard counts as running, no shard as pending.
    JobStates unknown;
    unknown.error = "squeue: no answer";
    const SweepCounts u = sweepCounts(sub, unknown, nullptr);
    CHECK_EQ(u.done, 1);
    CHECK_EQ(u.failed, 1);
    CHECK_EQ(u.running, 1);
    CHECK_EQ(u.pending, 2);
    CHECK_EQ(mergeStateText(u, unknown), std::string("unknown"));
    CHECK_EQ(mergeStateText(u, JobStates{}), std::string("ended"));
}

#ifdef LATHE_CLI
namespace {
// A PATH holding stand-in sbatch and scancel: sbatch answers job ids 100, 101, ... and refuses the call
// whose number is in $REFUSE_CALL with Slurm's words; each logs its arguments.
std::string stubSlurm(const std::string& dir) {
    const std::string bin = dir + "/bin";
    fs::create_directories(bin);
    writeExecutable(bin + "/sbatch", R"(#!/bin/sh
n=$(cat "$SLURM_STUB/calls" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "$SLURM_STUB/calls"
echo "sbatch $*" >> "$SLURM_STUB/log"
if [ "$n" = "${REFUSE_CALL:-0}" ]; then
  echo "sbatch: error: Batch job submission failed: Job dependency problem" >&2; exit 1
fi
echo $((99 + n))
)");
    writeExecutable(bin + "/scancel", "#!/bin/sh\necho \"scancel $*\" >> \"$SLURM_STUB/log\"\n");
    return bin;
}

ProcessResult submit(const std::string& dir, const std::string& bin, const std::string& refuse) {
    return runProcess({"env", "PATH=" + bin + ":/usr/bin:/bin", "SLURM_STUB=" + dir, "REFUSE_CALL=" + refuse,
                       "XDG_CONFIG_HOME=" + dir + "/config", LATHE_CLI, "submit",
                       test::sourcePath("tests/cluster/tiny_sweep.json"), "--slurm", "--workdir", dir + "/work",
                       "--db", dir + "/runs.sqlite", "--max-parallel", "2"},
                      60);
}
} // namespace

TEST_CASE(mergeJobRefusedCancelsTheArray) {
    const std::string dir = freshDir();
    const std::string bin = stubSlurm(dir);
    const ProcessResult r = submit(dir, bin, "2");
    CHECK_EQ(r.exitCode, 2);
    CHECK_MSG(r.err.find("Job dependency problem") != std::string::npos, r.err);
    CHECK_MSG(r.err.find("sbatch --parsable --dependency=afterany:100") != std::string::npos, r.err);
    CHECK_MSG(r.err.find("the task array 100 was cancelled") != std::string::npos, r.err);
    const std::string log = readAll(dir + "/log");
    CHECK_MSG(log.find("scancel 100\n") != std::string::npos, log);
    // Nothing recorded, no work folder left.
    CHECK(RunStore(dir + "/runs.sqlite").submissions().empty());
    CHECK(!fs::exists(dir + "/work") || fs::is_empty(dir + "/work"));
}

TEST_CASE(arrayRefusedSubmitsNothing) {
    const std::string dir = freshDir();
    const std::string bin = stubSlurm(dir);
    const ProcessResult r = submit(dir, bin, "1");
    CHECK_EQ(r.exitCode, 2);
    CHECK_MSG(r.err.find("sbatch --parsable") != std::string::npos && r.err.find("failed (exit status 1)") != std::string::npos, r.err);
    const std::string log = readAll(dir + "/log");
    CHECK_MSG(log.find("scancel") == std::string::npos && log.find("--dependency") == std::string::npos, log);
    CHECK(!fs::exists(dir + "/work") || fs::is_empty(dir + "/work"));
}

TEST_CASE(submissionIsRecorded) {
    const std::string dir = freshDir();
    const std::string bin = stubSlurm(dir);
    const ProcessResult r = submit(dir, bin, "0");
    REQUIRE_MSG(r.exitCode == 0, r.err);
    const auto subs = RunStore(dir + "/runs.sqlite").submissions();
    REQUIRE(subs.size() == 1);
    CHECK_EQ(subs[0].tasks, 4);
    CHECK_EQ(subs[0].arrayJobId, std::string("100"));
    CHECK_EQ(subs[0].mergeJobId, std::string("101"));
    CHECK(fs::exists(subs[0].workdir + "/tasks.sbatch"));
    CHECK(fs::exists(subs[0].workdir + "/merge.sbatch"));
    const auto plans = nlohmann::json::parse(readAll(subs[0].workdir + "/plans.json"));
    CHECK_EQ(plans.size(), std::size_t(4));
    const std::string log = readAll(dir + "/log");
    CHECK_MSG(log.find("sbatch --parsable --dependency=afterany:100 " + subs[0].workdir + "/merge.sbatch") !=
                  std::string::npos,
              log);
}
#endif

MINI_TEST_MAIN()
