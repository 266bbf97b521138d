// Runs the real flowgate binaries from tests: start, read their output with bounded waits,
// signal, and always reap (the destructor kills a process still running).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace flowgate::testing {

struct CommandResult {
  int exit_code = -1;  // -1: killed after the timeout; 128+N: died of signal N
  std::string out, err;
  bool timed_out = false;
};

// Runs argv to completion (killing it after `timeout`), collecting stdout and stderr.
CommandResult RunCommand(const std::vector<std::string>& argv,
                         std::chrono::milliseconds timeout = std::chrono::seconds(60));

// A process that runs while the test talks to it. Its stdout is discarded; its stderr is
// read continuously by a thread (a process must never block on a full pipe because the
// test is busy elsewhere) and kept for WaitForStderrLine and failure messages.
class BackgroundProcess {
 public:
  explicit BackgroundProcess(const std::vector<std::string>& argv);
  ~BackgroundProcess();
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  // Reads stderr until a line containing `needle` arrives (returned), the process closes
  // stderr, or `timeout` passes (nullopt). Lines read are kept in stderr_text().
  std::optional<std::string> WaitForStderrLine(const std::string& needle,
                                               std::chrono::milliseconds timeout);
  // Sends `signal` and waits for exit; returns the exit code as RunCommand does.
  int StopWith(int signal, std::chrono::milliseconds timeout = std::chrono::seconds(30));
  std::string stderr_text() const;
  pid_t pid() const { return pid_; }

 private:
  void ReadStderr();

  pid_t pid_ = -1;
  int stderr_fd_ = -1;
  std::thread reader_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::string stderr_;   // guarded by mutex_
  size_t scanned_ = 0;   // guarded by mutex_: bytes of stderr_ WaitForStderrLine consumed
  bool closed_ = false;  // guarded by mutex_
};

// The directory holding the built binaries (build/bin).
std::string BinaryPath(const std::string& name);

}  // namespace flowgate::testing
