// Levelled, line-oriented logging to stderr. One line per event; the level and the
// component come first so that `grep` and journald filters work.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace flowgate {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Messages below `level` are discarded. Thread-safe. Default: kInfo.
void SetLogLevel(LogLevel level);
// Parses "debug", "info", "warning", "error".
bool ParseLogLevel(std::string_view text, LogLevel* level);
// Writes one line `LEVEL component: message` to stderr. Thread-safe; lines never interleave.
void Log(LogLevel level, std::string_view component, std::string_view message);

// Lines a peer can trigger at will (connect floods, hostile frames) pass through a limiter:
// at most `lines_per_second` of them each second; the rest are counted and reported in one
// line, "N more WHAT suppressed (at most K per second)", at the most severe level held back,
// by the first call after their second is over or by Flush(). Thread-safe.
class LogLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  LogLimiter(std::string component, std::string what, int lines_per_second);

  void Log(LogLevel level, std::string_view message, Clock::time_point now = Clock::now());
  // Reports the lines held back once their second is over (at `now`).
  void Flush(Clock::time_point now = Clock::now());
  // When Flush() has something to report; nullopt when nothing is held back.
  std::optional<Clock::time_point> flush_due() const;

 private:
  void FlushLocked(Clock::time_point now);  // mutex_ held

  const std::string component_, what_;
  const int lines_per_second_;
  mutable std::mutex mutex_;
  Clock::time_point window_start_{};  // guarded by mutex_, as are the fields below
  int logged_in_window_ = 0;
  uint64_t suppressed_ = 0;
  LogLevel suppressed_level_ = LogLevel::kDebug;
};

}  // namespace flowgate
