// Runs the real flowgate binaries from tests: start, read their output with bounded waits,
// signal, and always reap (the destructor kills a process still running).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
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

// A process that runs while the test talks to it. Its stdout is discarded; stderr is read
// on demand.
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
  const std::string& stderr_text() const { return stderr_; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int stderr_fd_ = -1;
  std::string stderr_, pending_;
};

// The directory holding the built binaries (build/bin).
std::string BinaryPath(const std::string& name);

}  // namespace flowgate::testing
