// One command-line parser for every flowgate binary, so that all of them accept the same
// forms (`--name value`, `--name=value`, short aliases such as `-r FILE`), reject unknown
// flags the same way, and print `--help` from the same declarations that parse.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "flowgate/common/status.h"

namespace flowgate {

class FlagParser {
 public:
  // `usage` is the synopsis line(s) printed first by Help(); `description` follows it.
  FlagParser(std::string program, std::string usage, std::string description);

  // Declares a flag. `name` is the long name without dashes; `short_name` is one letter or
  // empty. `value_name` is what Help() shows for the argument. The handler receives the
  // argument text and returns a Status naming what is wrong with it. A flag may be given
  // more than once; each occurrence calls the handler.
  void AddOption(std::string name, std::string short_name, std::string value_name, std::string help,
                 std::function<Status(std::string_view)> handler);
  // Declares a flag that takes no argument.
  void AddSwitch(std::string name, std::string short_name, std::string help,
                 std::function<void()> handler);

  // Typed conveniences over AddOption; the target's value at declaration is the default.
  void AddString(std::string name, std::string short_name, std::string value_name, std::string help,
                 std::string* target);
  void AddUint(std::string name, std::string value_name, std::string help, uint64_t* target,
               uint64_t min_value, uint64_t max_value);
  // Accepts durations such as `250ms`, `15s`, `5m`, `2h`, `7d`; stores milliseconds.
  void AddDuration(std::string name, std::string help, uint64_t* target_ms);
  void AddBool(std::string name, std::string help, bool* target);
  // Accepts sizes such as `65536`, `64KiB`, `20MiB`, `2GiB`; at least `min_bytes`.
  void AddByteSize(std::string name, std::string help, uint64_t* target, uint64_t min_bytes);
  // Declares --log-level (debug, info, warning, error), applied as soon as it is parsed.
  void AddLogLevel();
  // Declares --metrics HOST:PORT (the Prometheus endpoint of a daemon), checked as an
  // address when parsed. Default: off.
  void AddMetricsListen(std::string* target);
  // Declares --config FILE and --check-config, for the daemons. The file is TOML whose
  // top-level keys are the long flag names:
  //   data-dir = "/var/lib/flowgate"   # as --data-dir /var/lib/flowgate
  //   local-net = ["10.0.0.0/8"]       # a repeatable flag takes a list
  //   agents-plaintext = true          # a switch takes true or false
  // Settings apply in the file's order, before the command line; a flag given on the command
  // line replaces the file's value(s) for that key. Parse() reports every problem of the
  // file at once, one per line as "PATH:LINE: problem".
  void AddConfigFile();
  // --check-config was given: ParseMainFlags reports on the configuration and exits.
  bool check_config_requested() const { return check_config_requested_; }

  // Parses argv. Returns InvalidArgument with a one-line message for an unknown flag, a
  // missing argument, or an argument the handler rejects. Positional arguments are
  // collected and returned by positional(). `--help`/`-h` sets help_requested().
  Status Parse(int argc, const char* const* argv);
  Status Parse(const std::vector<std::string>& args);

  bool help_requested() const { return help_requested_; }
  const std::vector<std::string>& positional() const { return positional_; }
  std::string Help() const;
  const std::string& program() const { return program_; }

 private:
  struct Flag {
    std::string name, short_name, value_name, help;
    std::function<Status(std::string_view)> handler;  // empty for switches
    std::function<void()> on_switch;
  };
  const Flag* Find(std::string_view name, bool is_short) const;
  // Calls `on_flag` for each flag in `args` with its value (nullopt for a switch). With
  // `record`, also notes --help and collects positional arguments.
  using FlagVisitor = std::function<Status(const Flag&, std::optional<std::string_view>)>;
  Status Walk(const std::vector<std::string>& args, bool record, const FlagVisitor& on_flag);
  // Applies the settings of config file `path`, except those whose flags are in `given`.
  Status ApplyConfigFile(const std::string& path, const std::vector<std::string>& given);

  std::string program_, usage_, description_;
  std::vector<Flag> flags_;
  std::vector<std::string> positional_;
  bool help_requested_ = false;
  bool config_file_enabled_ = false;
  bool check_config_requested_ = false;
};

// The front of every flowgate main(): parses argv; for --help prints Help() to stdout and
// returns 0; for a bad command line (an unknown flag, a bad value, what `validate` (if any)
// rejects, a positional argument when none is allowed) prints "PROGRAM: problem" on stderr and
// returns 2. With --check-config (see AddConfigFile) it validates as for a run, prints
// "PROGRAM: configuration OK" and returns 0, or prints every problem and returns 2.
// Returns nullopt when the program should go on.
std::optional<int> ParseMainFlags(FlagParser& flags, int argc, const char* const* argv,
                                  const std::function<Status()>& validate = {},
                                  bool allow_positional = false);

// Parses `250ms`, `15s`, `5m`, `2h`, `7d` (or a bare number of seconds) into milliseconds.
Result<uint64_t> ParseDurationMs(std::string_view text);
// Parses `1048576`, `64KiB`, `20MiB`, `2GiB` (also KB/MB/GB as powers of 1000) into bytes.
Result<uint64_t> ParseByteSize(std::string_view text);
// Parses a non-negative decimal integer; rejects signs, blanks and trailing text.
Result<uint64_t> ParseUint(std::string_view text);

}  // namespace flowgate
