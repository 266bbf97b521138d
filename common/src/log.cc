#include "flowgate/common/log.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <string>

namespace flowgate {
namespace {
std::atomic<int> g_min_level{static_cast<int>(LogLevel::kInfo)};

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarning:
      return "WARN";
    case LogLevel::kError:
      return "ERROR";
  }
  return "?";
}
}  // namespace

void SetLogLevel(LogLevel level) { g_min_level = static_cast<int>(level); }

bool ParseLogLevel(std::string_view text, LogLevel* level) {
  if (text == "debug")
    *level = LogLevel::kDebug;
  else if (text == "info")
    *level = LogLevel::kInfo;
  else if (text == "warning" || text == "warn")
    *level = LogLevel::kWarning;
  else if (text == "error")
    *level = LogLevel::kError;
  else
    return false;
  return true;
}

void Log(LogLevel level, std::string_view component, std::string_view message) {
  if (static_cast<int>(level) < g_min_level.load(std::memory_order_relaxed)) return;
  auto now = std::chrono::system_clock::now();
  std::time_t secs = std::chrono::system_clock::to_time_t(now);
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string line;
  line.reserve(64 + message.size());
  line += stamp;
  line += '.';
  line += std::to_string(1000 + ms).substr(1);
  line += "Z ";
  line += LevelName(level);
  line += ' ';
  line += component;
  line += ": ";
  line += message;
  line += '\n';
  // One write(2) per line keeps lines from different threads whole.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

LogLimiter::LogLimiter(std::string component, std::string what, int lines_per_second)
    : component_(std::move(component)),
      what_(std::move(what)),
      lines_per_second_(lines_per_second) {}

void LogLimiter::Log(LogLevel level, std::string_view message, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  FlushLocked(now);
  if (now - window_start_ >= std::chrono::seconds(1)) {
    window_start_ = now;
    logged_in_window_ = 0;
  }
  if (logged_in_window_ < lines_per_second_) {
    ++logged_in_window_;
    flowgate::Log(level, component_, message);
    return;
  }
  ++suppressed_;
  suppressed_level_ = std::max(suppressed_level_, level);
}

void LogLimiter::Flush(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  FlushLocked(now);
}

void LogLimiter::FlushLocked(Clock::time_point now) {
  if (suppressed_ == 0 || now - window_start_ < std::chrono::seconds(1)) return;
  flowgate::Log(suppressed_level_, component_,
                std::to_string(suppressed_) + " more " + what_ + " suppressed (at most " +
                    std::to_string(lines_per_second_) + " per second)");
  suppressed_ = 0;
  suppressed_level_ = LogLevel::kDebug;
}

std::optional<LogLimiter::Clock::time_point> LogLimiter::flush_due() const {
  std::lock_guard lock(mutex_);
  if (suppressed_ == 0) return std::nullopt;
  return window_start_ + std::chrono::seconds(1);
}

}  // namespace flowgate
