// Reading a daemon's TOML config file as the flags it stands for (see
// FlagParser::AddConfigFile). Private to flowgate_common: only the flag parser reads it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "flowgate/common/status.h"

namespace flowgate {

// One top-level key of a config file.
struct ConfigSetting {
  enum class Kind {
    kValues,  // a string or number, or an array of them: one flag occurrence per value
    kTrue,    // `key = true`: a switch turned on
    kFalse,   // `key = false`: a switch left off
  };
  std::string key;  // the long flag name, e.g. "data-dir"
  Kind kind = Kind::kValues;
  std::vector<std::string> values;
  uint32_t line = 0;
  // A value the file holds that no flag can take (a table, an array of tables, a date...):
  // says what is wrong; the setting is otherwise empty.
  std::string problem;
};

// The file's top-level keys in the order they appear in it (order matters for flags that
// apply to the one before them, such as the gateway's --json-filter). Fails with
// "PATH:LINE:COLUMN: what" when the file is not valid TOML, or "cannot read PATH".
Result<std::vector<ConfigSetting>> ReadConfigFile(const std::string& path);

}  // namespace flowgate
