#include "flowgate/common/flags.h"

#include "flowgate/common/log.h"

#include <charconv>
#include <cstdio>
#include <optional>
#include <sstream>

namespace flowgate {

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
  if (!target->empty()) help += " (default: " + *target + ")";
  AddOption(std::move(name), std::move(short_name), std::move(value_name), std::move(help),
            [target](std::string_view v) {
              *target = std::string(v);
              return Status::Ok();
            });
}

void FlagParser::AddUint(std::string name, std::string value_name, std::string help,
                         uint64_t* target, uint64_t min_value, uint64_t max_value) {
  help += " (default: " + std::to_string(*target) + ")";
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
  help += " (default: " + std::to_string(*target_ms) + "ms)";
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
  help += " (default: " + std::to_string(*target) + " bytes)";
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
  if (status.ok()) return std::nullopt;
  std::fprintf(stderr, "%s: %s\n", flags.program().c_str(), status.message().c_str());
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
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      help_requested_ = true;
      continue;
    }
    if (arg.size() < 2 || arg[0] != '-' || arg == "--") {
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
      flag->on_switch();
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
    FLOWGATE_RETURN_IF_ERROR(flag->handler(value));
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
