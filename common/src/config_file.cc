#include "config_file.h"

#include <toml++/toml.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace flowgate {
namespace {

// A scalar as the flag argument it stands for; false for what no flag takes.
bool ScalarAsArgument(const toml::node& node, std::string* out) {
  if (const auto* text = node.as_string()) {
    *out = text->get();
    return true;
  }
  if (const auto* number = node.as_integer()) {
    if (number->get() < 0) return false;  // no flag takes a negative number
    *out = std::to_string(number->get());
    return true;
  }
  return false;
}

ConfigSetting SettingOf(const std::string& key, const toml::node& node) {
  ConfigSetting setting;
  setting.key = key;
  setting.line = static_cast<uint32_t>(node.source().begin.line);
  if (const auto* flag = node.as_boolean()) {
    setting.kind = flag->get() ? ConfigSetting::Kind::kTrue : ConfigSetting::Kind::kFalse;
    return setting;
  }
  std::string value;
  if (ScalarAsArgument(node, &value)) {
    setting.values.push_back(std::move(value));
    return setting;
  }
  if (const auto* array = node.as_array()) {
    for (const toml::node& element : *array) {
      if (!ScalarAsArgument(element, &value)) {
        setting.problem = "'" + key + "' lists something other than a string or a whole number";
        return setting;
      }
      setting.values.push_back(std::move(value));
    }
    return setting;
  }
  if (node.is_table()) {
    setting.problem = "'" + key + "' is a table; settings are flag names at the top level";
  } else {
    setting.problem = "'" + key + "' must be a string, a whole number, true/false or a list";
  }
  return setting;
}

}  // namespace

Result<std::vector<ConfigSetting>> ReadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::InvalidArgument("cannot read config file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  // Debian's libtomlplusplus is built with exceptions, so parse errors arrive as one.
  toml::table table;
  try {
    table = toml::parse(text.str(), path);
  } catch (const toml::parse_error& error) {
    return Status::InvalidArgument(path + ":" + std::to_string(error.source().begin.line) + ":" +
                                   std::to_string(error.source().begin.column) + ": " +
                                   std::string(error.description()));
  }
  std::vector<ConfigSetting> settings;
  for (const auto& [key, node] : table) {
    settings.push_back(SettingOf(std::string(key.str()), node));
  }
  // toml++ keeps keys sorted; the file's order is what a reader of it expects.
  std::stable_sort(settings.begin(), settings.end(),
                   [](const ConfigSetting& a, const ConfigSetting& b) { return a.line < b.line; });
  return settings;
}

}  // namespace flowgate
