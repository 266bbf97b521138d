#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace flowgate::testing {
namespace {

using Clock = std::chrono::steady_clock;

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Forks and execs argv with stdout/stderr redirected to the given fds (-1: /dev/null).
pid_t Spawn(const std::vector<std::string>& argv, int out_fd, int err_fd) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    // Its own process group, so that a test can end a pipeline (sh -c "nc | jq") whole.
    ::setpgid(0, 0);
    int null_fd = ::open("/dev/null", O_RDWR);
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(out_fd >= 0 ? out_fd : null_fd, STDOUT_FILENO);
    ::dup2(err_fd >= 0 ? err_fd : null_fd, STDERR_FILENO);
    ::execv(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  return pid;
}

int MillisLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

// Waits for pid to exit until the deadline (then kills it). A pidfd becomes readable when
// the process exits, so the wait is event-driven and bounded.
int WaitUntil(pid_t pid, Clock::time_point deadline, bool* timed_out) {
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    while (::poll(&p, 1, MillisLeft(deadline)) < 0 && errno == EINTR) {
    }
    ::close(pidfd);
  }
  int status = 0;
  if (::waitpid(pid, &status, WNOHANG) == pid) return DecodeWaitStatus(status);
  *timed_out = true;
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

}  // namespace

CommandResult RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  pid_t pid = Spawn(argv, out_pipe[1], err_pipe[1]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  CommandResult result;
  const auto deadline = Clock::now() + timeout;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  char buffer[65536];
  while (open_fds > 0 && Clock::now() < deadline) {
    if (::poll(fds, 2, MillisLeft(deadline)) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (pollfd& p : fds) {
    if (p.fd >= 0) ::close(p.fd);
  }
  result.exit_code = WaitUntil(pid, deadline, &result.timed_out);
  return result;
}

BackgroundProcess::BackgroundProcess(const std::vector<std::string>& argv) {
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  pid_ = Spawn(argv, -1, err_pipe[1]);
  ::close(err_pipe[1]);
  stderr_fd_ = err_pipe[0];
  reader_ = std::thread([this] { ReadStderr(); });
}

BackgroundProcess::~BackgroundProcess() {
  if (pid_ > 0) {
    ::kill(-pid_, SIGKILL);
    int status;
    ::waitpid(pid_, &status, 0);
  }
  // EOF arrives once the process and any children holding the pipe are gone.
  if (reader_.joinable()) reader_.join();
  if (stderr_fd_ >= 0) ::close(stderr_fd_);
}

void BackgroundProcess::ReadStderr() {
  char buffer[4096];
  while (true) {
    ssize_t n = ::read(stderr_fd_, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    std::lock_guard lock(mutex_);
    if (n <= 0) {
      closed_ = true;
      changed_.notify_all();
      return;
    }
    stderr_.append(buffer, static_cast<size_t>(n));
    changed_.notify_all();
  }
}

std::string BackgroundProcess::stderr_text() const {
  std::lock_guard lock(mutex_);
  return stderr_;
}

std::optional<std::string> BackgroundProcess::WaitForStderrLine(const std::string& needle,
                                                                std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::unique_lock lock(mutex_);
  while (true) {
    size_t newline;
    while ((newline = stderr_.find('\n', scanned_)) != std::string::npos) {
      std::string line = stderr_.substr(scanned_, newline - scanned_);
      scanned_ = newline + 1;
      if (line.find(needle) != std::string::npos) return line;
    }
    if (closed_) return std::nullopt;
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout) return std::nullopt;
  }
}

int BackgroundProcess::StopWith(int signal, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  if (signal != 0) ::kill(pid_, signal);
  bool timed_out = false;
  int code = WaitUntil(pid_, Clock::now() + timeout, &timed_out);
  pid_ = -1;
  return code;
}

std::string BinaryPath(const std::string& name) {
  return std::string(FLOWGATE_BIN_DIR) + "/" + name;
}

}  // namespace flowgate::testing
