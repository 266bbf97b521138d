// Levelled, line-oriented logging to stderr. One line per event; the level and the
// component come first so that `grep` and journald filters work.
#pragma once

#include <string_view>

namespace flowgate {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Messages below `level` are discarded. Thread-safe. Default: kInfo.
void SetLogLevel(LogLevel level);
// Parses "debug", "info", "warning", "error".
bool ParseLogLevel(std::string_view text, LogLevel* level);
// Writes one line `LEVEL component: message` to stderr. Thread-safe; lines never interleave.
void Log(LogLevel level, std::string_view component, std::string_view message);

}  // namespace flowgate
