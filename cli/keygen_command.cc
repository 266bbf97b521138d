#include "keygen_command.h"

#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

#include "flowgate/common/curve_keys.h"
#include "flowgate/common/flags.h"

namespace flowgate::cli {

int RunKeygenCommand(int argc, char** argv) {
  std::string out_dir = ".";
  std::string name;
  FlagParser flags(
      "flowgate keygen", "flowgate keygen --name NAME [--out DIR]",
      "Writes a CURVE key pair for ZeroMQ between agents and gateway: DIR/NAME.key (the pair;\n"
      "keep it on the machine that uses it) and DIR/NAME.pub (the public key: give a\n"
      "gateway's to its agents with --gateway-key, add an agent's to the gateway's\n"
      "--agents-allow file). Both are created readable by their owner only; existing files\n"
      "are never overwritten.\n\n"
      "Example: flowgate keygen --name gateway --out /etc/flowgate\n"
      "         flowgate keygen --name probe-1 && cat probe-1.pub >> agents.allow");
  flags.AddString("out", "o", "DIR", "Directory to write into (created if missing)", &out_dir);
  flags.AddString("name", "n", "NAME", "Base name of the key files, e.g. gateway or probe-1",
                  &name);
  std::optional<int> exit_code = ParseMainFlags(flags, argc, argv, [&]() -> Status {
    if (name.empty() || name.find('/') != std::string::npos) {
      return Status::InvalidArgument("keygen needs --name NAME (no '/'; see --help)");
    }
    return Status::Ok();
  });
  if (exit_code) return *exit_code;
  std::error_code error;
  std::filesystem::create_directories(out_dir, error);
  if (error) {
    std::fprintf(stderr, "flowgate keygen: cannot create '%s': %s\n", out_dir.c_str(),
                 error.message().c_str());
    return 1;
  }
  Result<CurveKeyPair> pair = MakeCurveKeyPair();
  Status written = pair.ok() ? WriteCurveKeyPair(out_dir, name, *pair) : pair.status();
  if (!written.ok()) {
    std::fprintf(stderr, "flowgate keygen: %s\n", written.message().c_str());
    return 1;
  }
  std::printf("%s/%s.key\n%s/%s.pub\n", out_dir.c_str(), name.c_str(), out_dir.c_str(),
              name.c_str());
  return 0;
}

}  // namespace flowgate::cli
