// Running a command (sbatch, squeue, scancel, sacct) and capturing what it says: the cluster commands
// quote the scheduler's own messages to the user, so stdout and stderr are both kept.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace lathe::cluster {

struct ProcessResult {
    bool started = false;   // false: the program could not be run at all (startError says why)
    std::string startError;
    int exitCode = -1;      // the exit status; 128 + N when killed by signal N
    bool timedOut = false;
    std::string out, err;
};

// Runs argv[0] (looked up on PATH) with the given arguments, no shell, stdin from /dev/null; kills it
// after timeoutS seconds.
ProcessResult runProcess(const std::vector<std::string>& argv, int timeoutS = 60);

// The full path of `program` on PATH, or nothing.
std::optional<std::string> findOnPath(const std::string& program);

// "sbatch --parsable x.sbatch" with every argument quoted for a shell where it needs it (messages).
std::string commandLine(const std::vector<std::string>& argv);

// 'text' for a POSIX shell.
std::string shellQuote(const std::string& text);

} // namespace lathe::cluster
