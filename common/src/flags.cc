#include "flowgate/common/flags.h"

#include "config_file.h"
#include "flowgate/common/inet_address.h"
#include "flowgate/common/log.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <optional>
#include <sstream>

namespace flowgate {

namespace {
// Appends "(default: TEXT)" unless the help names its default already.
void AppendDefault(std::string* help, const std::string& text) {
  if (help->find("(default:") == std::string::npos) *help += " (default: " + text + ")";
}

// A duration as it would be typed: 15s rather than 15000ms.
std::string FormatDuration(uint64_t ms) {
  constexpr std::pair<uint64_t, const char*> kUnits[] = {
      {86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}};
  if (ms == 0) return "0";
  for (const auto& [scale, unit] : kUnits) {
    if (ms % scale == 0) return std::to_string(ms / scale) + unit;
  }
  return std::to_string(ms) + "ms";
}

// A size as it would be typed: 16MiB rather than 16777216.
std::string FormatByteSize(uint64_t bytes) {
  constexpr std::pair<uint64_t, const char*> kUnits[] = {
      {1ULL << 40, "TiB"}, {1ULL << 30, "GiB"}, {1ULL << 20, "MiB"}, {1ULL << 10, "KiB"}};
  if (bytes == 0) return "0";
  for (const auto& [scale, unit] : kUnits) {
    if (bytes % scale == 0) return std::to_string(bytes / scale) + unit;
  }
  return std::to_string(bytes);
}
}  // namespace

FlagParser::FlagParser(std::string program, std::string usage, std::string description)
    : program_(std::move(program)),
      usage_(std::move(usage)),
      description_(std::move(description)) {}

void FlagParser::AddOption(std::string name, std::string short_name, std::string value_name,
                           std::string help, std::function<Status(std::string_view)> handler) {
  flags_.push_back(Flag{std::move(name), std::move(short_name), std::move(value_name),
                        std::move(help), std::move(handler), nullptr});
}

void FlagParser::AddSwitch(std::string name, std::string short_name, std::string help,
                           std::function<void()> handler) {
  flags_.push_back(Flag{std::move(name), std::move(short_name), "", std::move(help), nullptr,
                        std::move(handler)});
}

void FlagParser::AddString(std::string name, std::string short_name, std::string value_name,
                           std::string help, std::string* target) {
  if (!target->empty()) AppendDefault(&help, *target);
  AddOption(std::move(name), std::move(short_name), std::move(value_name), std::move(help),
            [target](std::string_view v) {
              *target = std::string(v);
              return Status::Ok();
            });
}

void FlagParser::AddUint(std::string name, std::string value_name, std::string help,
                         uint64_t* target, uint64_t min_value, uint64_t max_value) {
  AppendDefault(&help, std::to_string(*target));
  std::string flag = name;
  AddOption(std::move(name), "", std::move(value_name), std::move(help),
            [=](std::string_view v) -> Status {
              Result<uint64_t> n = ParseUint(v);
              if (!n.ok() || *n < min_value || *n > max_value) {
                return Status::InvalidArgument(
                    "--" + flag + " takes a whole number from " + std::to_string(min_value) +
                    " to " + std::to_string(max_value) + ", not '" + std::string(v) + "'");
              }
              *target = *n;
              return Status::Ok();
            });
}

void FlagParser::AddDuration(std::string name, std::string help, uint64_t* target_ms) {
  AppendDefault(&help, FormatDuration(*target_ms));
  std::string flag = name;
  AddOption(std::move(name), "", "DURATION", std::move(help), [=](std::string_view v) -> Status {
    Result<uint64_t> ms = ParseDurationMs(v);
    if (!ms.ok()) return Status::InvalidArgument("--" + flag + ": " + ms.status().message());
    *target_ms = *ms;
    return Status::Ok();
  });
}

void FlagParser::AddByteSize(std::string name, std::string help, uint64_t* target,
                             uint64_t min_bytes) {
  AppendDefault(&help, FormatByteSize(*target));
  std::string flag = name;
  AddOption(std::move(name), "", "SIZE", std::move(help), [=](std::string_view v) -> Status {
    Result<uint64_t> bytes = ParseByteSize(v);
    if (!bytes.ok()) return Status::InvalidArgument("--" + flag + ": " + bytes.status().message());
    if (*bytes < min_bytes) {
      return Status::InvalidArgument("--" + flag + " must be at least " +
                                     std::to_string(min_bytes) + " bytes");
    }
    *target = *bytes;
    return Status::Ok();
  });
}

void FlagParser::AddBool(std::string name, std::string help, bool* target) {
  AddSwitch(std::move(name), "", std::move(help), [target] { *target = true; });
}

void FlagParser::AddLogLevel() {
  AddOption("log-level", "", "LEVEL", "debug, info, warning or error (default: info)",
            [](std::string_view v) -> Status {
              LogLevel level;
              if (!ParseLogLevel(v, &level)) {
                return Status::InvalidArgument("--log-level must be debug, info, warning or error");
              }
              SetLogLevel(level);
              return Status::Ok();
            });
}

void FlagParser::AddMetricsListen(std::string* target) {
  AddOption("metrics", "", "HOST:PORT",
            "Serve Prometheus metrics at http://HOST:PORT/metrics, e.g. 127.0.0.1:9151 "
            "(port 0 picks one; default: off)",
            [target](std::string_view v) -> Status {
              Result<InetAddress> address = ParseInetAddress(std::string(v), "--metrics address");
              if (!address.ok()) return address.status();
              *target = std::string(v);
              return Status::Ok();
            });
}

void FlagParser::AddConfigFile() {
  config_file_enabled_ = true;
  // The file itself is read by Parse() before the command line; nothing to do here.
  AddOption("config", "", "FILE",
            "Read settings from a TOML file whose keys are these long flag names, e.g. "
            "data-dir = \"/var/lib/flowgate\" (command-line flags override it)",
            [](std::string_view) { return Status::Ok(); });
  AddSwitch("check-config", "",
            "Check the configuration (file and flags), print each problem, and exit",
            [this] { check_config_requested_ = true; });
}

std::optional<int> ParseMainFlags(FlagParser& flags, int argc, const char* const* argv,
                                  const std::function<Status()>& validate, bool allow_positional) {
  Status status = flags.Parse(argc, argv);
  if (flags.help_requested()) {
    std::fputs(flags.Help().c_str(), stdout);
    return 0;
  }
  if (status.ok() && !allow_positional && !flags.positional().empty()) {
    status = Status::InvalidArgument("unexpected argument '" + flags.positional().front() +
                                     "'; see " + flags.program() + " --help");
  }
  if (status.ok() && validate) status = validate();
  if (status.ok()) {
    if (!flags.check_config_requested()) return std::nullopt;
    std::printf("%s: configuration OK\n", flags.program().c_str());
    return 0;
  }
  // A config file's problems come one per line; each line names the program.
  std::string_view problems = status.message();
  while (!problems.empty()) {
    const size_t end = std::min(problems.find('\n'), problems.size());
    std::fprintf(stderr, "%s: %.*s\n", flags.program().c_str(), static_cast<int>(end),
                 problems.data());
    problems.remove_prefix(std::min(end + 1, problems.size()));
  }
  return 2;
}

const FlagParser::Flag* FlagParser::Find(std::string_view name, bool is_short) const {
  for (const Flag& f : flags_) {
    if ((is_short ? f.short_name : f.name) == name && !name.empty()) return &f;
  }
  return nullptr;
}

Status FlagParser::Parse(int argc, const char* const* argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return Parse(args);
}

Status FlagParser::Parse(const std::vector<std::string>& args) {
  if (config_file_enabled_) {
    std::string config_path;
    std::vector<std::string> given;
    // Problems of the command line itself are reported by the walk that applies it, below.
    (void)Walk(args, /*record=*/false,
               [&](const Flag& flag, std::optional<std::string_view> value) {
                 given.push_back(flag.name);
                 if (flag.name == "config" && value) config_path = *value;
                 return Status::Ok();
               });
    if (!config_path.empty()) FLOWGATE_RETURN_IF_ERROR(ApplyConfigFile(config_path, given));
  }
  return Walk(args, /*record=*/true,
              [](const Flag& flag, std::optional<std::string_view> value) -> Status {
                if (!value) {
                  flag.on_switch();
                  return Status::Ok();
                }
                return flag.handler(*value);
              });
}

Status FlagParser::ApplyConfigFile(const std::string& path, const std::vector<std::string>& given) {
  Result<std::vector<ConfigSetting>> settings = ReadConfigFile(path);
  if (!settings.ok()) return settings.status();
  std::vector<std::string> problems;
  for (const ConfigSetting& setting : *settings) {
    const std::string where = path + ":" + std::to_string(setting.line) + ": ";
    if (!setting.problem.empty()) {
      problems.push_back(where + setting.problem);
      continue;
    }
    const Flag* flag = Find(setting.key, /*is_short=*/false);
    if (flag == nullptr || flag->name == "config" || flag->name == "check-config") {
      std::string allowed;
      for (const Flag& f : flags_) {
        if (f.name == "config" || f.name == "check-config") continue;
        allowed += (allowed.empty() ? "" : ", ") + f.name;
      }
      problems.push_back(where + "unknown setting '" + setting.key + "' (settings: " + allowed +
                         ")");
      continue;
    }
    if (std::find(given.begin(), given.end(), flag->name) != given.end()) continue;
    if (!flag->handler) {
      if (setting.kind == ConfigSetting::Kind::kValues) {
        problems.push_back(where + "'" + setting.key + "' takes true or false");
      } else if (setting.kind == ConfigSetting::Kind::kTrue) {
        flag->on_switch();
      }
      continue;
    }
    if (setting.kind != ConfigSetting::Kind::kValues) {
      problems.push_back(where + "'" + setting.key + "' takes a value (" + flag->value_name +
                         "), not true or false");
      continue;
    }
    for (const std::string& value : setting.values) {
      if (Status status = flag->handler(value); !status.ok()) {
        problems.push_back(where + status.message());
        break;
      }
    }
  }
  if (problems.empty()) return Status::Ok();
  std::string message;
  for (const std::string& problem : problems) message += (message.empty() ? "" : "\n") + problem;
  return Status::InvalidArgument(message);
}

Status FlagParser::Walk(const std::vector<std::string>& args, bool record,
                        const FlagVisitor& on_flag) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      if (record) help_requested_ = true;
      continue;
    }
    if (arg.size() < 2 || arg[0] != '-' || arg == "--") {
      if (!record) {
        if (arg == "--") break;
        continue;
      }
      if (arg == "--") {
        positional_.insert(positional_.end(), args.begin() + static_cast<long>(i) + 1, args.end());
        break;
      }
      positional_.push_back(arg);
      continue;
    }
    const bool is_short = arg[1] != '-';
    std::string_view body = std::string_view(arg).substr(is_short ? 1 : 2);
    std::optional<std::string_view> inline_value;
    if (size_t eq = body.find('='); !is_short && eq != std::string_view::npos) {
      inline_value = body.substr(eq + 1);
      body = body.substr(0, eq);
    }
    const Flag* flag = Find(body, is_short);
    if (flag == nullptr) {
      return Status::InvalidArgument("unknown flag '" + arg + "'; see " + program_ + " --help");
    }
    const std::string shown = is_short ? "-" + flag->short_name : "--" + flag->name;
    if (!flag->handler) {
      if (inline_value) return Status::InvalidArgument(shown + " takes no value");
      FLOWGATE_RETURN_IF_ERROR(on_flag(*flag, std::nullopt));
      continue;
    }
    std::string_view value;
    if (inline_value) {
      value = *inline_value;
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return Status::InvalidArgument(shown + " needs a value (" + flag->value_name + ")");
    }
    FLOWGATE_RETURN_IF_ERROR(on_flag(*flag, value));
  }
  return Status::Ok();
}

std::string FlagParser::Help() const {
  std::ostringstream out;
  out << "Usage: " << usage_ << "\n\n" << description_ << "\n\nOptions:\n";
  for (const Flag& f : flags_) {
    std::string left = "  ";
    left += f.short_name.empty() ? "    " : "-" + f.short_name + ", ";
    left += "--" + f.name;
    if (!f.value_name.empty()) left += " " + f.value_name;
    out << left;
    if (left.size() < 32) {
      out << std::string(32 - left.size(), ' ');
    } else {
      out << "\n" << std::string(32, ' ');
    }
    out << f.help << "\n";
  }
  out << "  -h, --help                    Show this help and exit\n";
  return out.str();
}

Result<uint64_t> ParseUint(std::string_view text) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    return Status::InvalidArgument("'" + std::string(text) + "' is not a whole number");
  }
  return value;
}

namespace {
// Splits "15s" into 15 and "s"; fails on an empty or non-numeric head.
Result<std::pair<uint64_t, std::string_view>> SplitNumberUnit(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return Status::InvalidArgument("'" + std::string(text) + "' has no number");
  Result<uint64_t> n = ParseUint(text.substr(0, digits));
  if (!n.ok()) return n.status();
  return std::pair<uint64_t, std::string_view>{*n, text.substr(digits)};
}
}  // namespace

Result<uint64_t> ParseDurationMs(std::string_view text) {
  auto split = SplitNumberUnit(text);
  if (!split.ok()) {
    return Status::InvalidArgument("'" + std::string(text) +
                                   "' is not a duration (examples: 250ms, 15s, 5m, 2h, 7d)");
  }
  auto [n, unit] = *split;
  uint64_t scale = 0;
  if (unit == "ms") scale = 1;
  if (unit == "s" || unit.empty()) scale = 1000;
  if (unit == "m") scale = 60'000;
  if (unit == "h") scale = 3'600'000;
  if (unit == "d") scale = 86'400'000;
  if (scale == 0) {
    return Status::InvalidArgument("'" + std::string(text) +
                                   "' has an unknown unit (use ms, s, m, h or d)");
  }
  return n * scale;
}

Result<uint64_t> ParseByteSize(std::string_view text) {
  auto split = SplitNumberUnit(text);
  if (!split.ok()) {
    return Status::InvalidArgument("'" + std::string(text) +
                                   "' is not a size (examples: 65536, 64KiB, 20MiB, 2GiB)");
  }
  auto [n, unit] = *split;
  uint64_t scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  if (unit == "KiB") scale = 1ULL << 10;
  if (unit == "MiB") scale = 1ULL << 20;
  if (unit == "GiB") scale = 1ULL << 30;
  if (unit == "TiB") scale = 1ULL << 40;
  if (unit == "KB") scale = 1000;
  if (unit == "MB") scale = 1000'000;
  if (unit == "GB") scale = 1000'000'000;
  if (scale == 0) {
    return Status::InvalidArgument("'" + std::string(text) +
                                   "' has an unknown unit (use B, KiB, MiB, GiB, KB, MB or GB)");
  }
  return n * scale;
}

}  // namespace flowgate
