// Spawning store_kill_child for the kill and concurrency tests: stdout through a pipe, read line by
// line with a deadline, so the test can kill the child at a moment of its choosing.
#pragma once

#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace lathe::test {

class ChildProcess {
public:
    explicit ChildProcess(const std::vector<std::string>& argv) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) return;
        m_pid = ::fork();
        if (m_pid == 0) {
            ::dup2(fds[1], STDOUT_FILENO);
            std::vector<char*> args;
            for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
            args.push_back(nullptr);
            ::execv(args[0], args.data());
            ::_exit(127);
        }
        ::close(fds[1]);
        m_out = fds[0];
    }
    ~ChildProcess() {
        if (m_pid > 0 && !m_reaped) {
            ::kill(m_pid, SIGKILL);
            wait();
        }
        if (m_out >= 0) ::close(m_out);
    }
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    pid_t pid() const { return m_pid; }
    bool started() const { return m_pid > 0 && m_out >= 0; }

    // Appends the complete lines that arrive within timeoutMs; false once the child closed stdout.
    bool readLines(std::vector<std::string>& lines, int timeoutMs) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
        while (true) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() < 0) return true;
            pollfd p{m_out, POLLIN, 0};
            const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
            if (ready == 0) return true;
            if (ready < 0) continue;
            char buf[4096];
            const ssize_t n = ::read(m_out, buf, sizeof(buf));
            if (n <= 0) return false;
            m_partial.append(buf, static_cast<std::size_t>(n));
            for (std::size_t nl; (nl = m_partial.find('\n')) != std::string::npos;) {
                lines.push_back(m_partial.substr(0, nl));
                m_partial.erase(0, nl + 1);
            }
        }
    }

    // Waits for exit; the raw waitpid status.
    int wait() {
        int status = 0;
        while (::waitpid(m_pid, &status, 0) < 0 && errno == EINTR) {
        }
        m_reaped = true;
        return status;
    }

private:
    pid_t m_pid = -1;
    int m_out = -1;
    bool m_reaped = false;
    std::string m_partial;
};

} // namespace lathe::test
