// What an operator installs: the example configs are valid for the real binaries, a broken
// config is refused with its line, `cmake --install` puts everything in place, and the
// installed systemd units pass systemd's own checker.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "../support/process.h"
#include "../support/temp_dir.h"

namespace flowgate::testing {
namespace {

const std::filesystem::path kSourceDir = FLOWGATE_SOURCE_DIR;

std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(DeployTest, ExampleConfigsPassCheckConfig) {
  for (const auto& [binary, config] : std::vector<std::pair<std::string, std::string>>{
           {"flowgate-gateway", "gateway.toml"}, {"flowgate-agent", "agent.toml"}}) {
    const std::string path = (kSourceDir / "deploy" / "config" / config).string();
    CommandResult result = RunCommand({BinaryPath(binary), "--config", path, "--check-config"});
    EXPECT_EQ(result.exit_code, 0) << binary << " " << path << ":\n" << result.err;
    EXPECT_EQ(result.out, binary + ": configuration OK\n") << result.err;
  }
}

TEST(DeployTest, ExampleConfigsNameOnlyRealFlags) {
  // Commented-out keys are examples too: uncommented, each must be a flag of its binary.
  for (const auto& [binary, config] : std::vector<std::pair<std::string, std::string>>{
           {"flowgate-gateway", "gateway.toml"}, {"flowgate-agent", "agent.toml"}}) {
    const std::string help = RunCommand({BinaryPath(binary), "--help"}).out;
    std::istringstream lines(ReadAll(kSourceDir / "deploy" / "config" / config));
    const std::regex setting(R"(^#? ?([a-z][a-z0-9-]*) = )");
    std::string line;
    int settings = 0;
    while (std::getline(lines, line)) {
      std::smatch match;
      if (!std::regex_search(line, match, setting)) continue;
      ++settings;
      EXPECT_NE(help.find("--" + match[1].str() + " "), std::string::npos)
          << config << " names '" << match[1] << "', which " << binary << " --help does not list";
    }
    EXPECT_GT(settings, 10) << config;
  }
}

TEST(DeployTest, BrokenConfigIsRefusedWithItsLine) {
  TempDir dir;
  const std::string path = dir.Sub("gateway.toml");
  std::ofstream(path) << "data-dir = \"" << dir.Sub("db") << "\"\n"
                      << "agents-plaintext = true\n"
                      << "retention = \"seven days\"\n"
                      << "json-socket-mode = \"0999\"\n";
  for (bool check_only : {true, false}) {
    std::vector<std::string> argv = {BinaryPath("flowgate-gateway"), "--config", path};
    if (check_only) argv.push_back("--check-config");
    CommandResult result = RunCommand(argv, std::chrono::seconds(30));
    EXPECT_EQ(result.exit_code, 2) << result.err;
    EXPECT_NE(result.err.find("flowgate-gateway: " + path +
                              ":3: --retention: 'seven days' is not a duration"),
              std::string::npos)
        << result.err;
    EXPECT_NE(result.err.find("flowgate-gateway: " + path + ":4: --json-socket-mode takes octal"),
              std::string::npos)
        << result.err;
    // Nothing was started: the store was never created.
    EXPECT_FALSE(std::filesystem::exists(dir.Sub("db")));
  }
}

TEST(DeployTest, CommandLineOverridesTheConfigFile) {
  TempDir dir;
  const std::string path = dir.Sub("agent.toml");
  std::ofstream(path) << "read = [\"/nonexistent.pcap\"]\nworkers = 0\n";
  // The file's bad `workers` is reported even though the command line is fine...
  CommandResult bad =
      RunCommand({BinaryPath("flowgate-agent"), "--config", path, "--check-config"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find(path + ":2: --workers takes a whole number"), std::string::npos)
      << bad.err;
  // ...and a flag on the command line replaces it.
  CommandResult overridden = RunCommand(
      {BinaryPath("flowgate-agent"), "--config", path, "--workers", "2", "--check-config"});
  EXPECT_EQ(overridden.exit_code, 0) << overridden.err;
}

TEST(DeployTest, InstallPutsEverythingInPlaceAndUnitsPassSystemdAnalyzeVerify) {
  TempDir prefix;
  CommandResult install = RunCommand(
      {FLOWGATE_CMAKE_COMMAND, "--install", FLOWGATE_BUILD_DIR, "--prefix", prefix.path().string()},
      std::chrono::seconds(120));
  ASSERT_EQ(install.exit_code, 0) << install.out << install.err;
  for (const std::string file :
       {"bin/flowgate-gateway", "bin/flowgate-agent", "bin/flowgate",
        "lib/systemd/system/flowgate-gateway.service", "lib/systemd/system/flowgate-agent@.service",
        "lib/tmpfiles.d/flowgate.conf", "lib/sysusers.d/flowgate.conf",
        "share/doc/flowgate/examples/gateway.toml", "share/doc/flowgate/examples/agent.toml"}) {
    EXPECT_TRUE(std::filesystem::exists(prefix.path() / file)) << file << " was not installed";
  }
  // The units start the binaries where this install put them.
  const std::string gateway_unit =
      ReadAll(prefix.path() / "lib/systemd/system/flowgate-gateway.service");
  EXPECT_NE(gateway_unit.find("ExecStart=" + (prefix.path() / "bin/flowgate-gateway").string() +
                              " --config /etc/flowgate/gateway.toml"),
            std::string::npos)
      << gateway_unit;

  const std::string systemd_analyze = "/usr/bin/systemd-analyze";
  if (!std::filesystem::exists(systemd_analyze)) GTEST_SKIP() << "systemd-analyze is not installed";
  const std::filesystem::path units = prefix.path() / "lib/systemd/system";
  // A template is verified as one of its instances.
  std::filesystem::copy_file(units / "flowgate-agent@.service",
                             units / "flowgate-agent@site-a.service");
  for (const std::string unit : {"flowgate-gateway.service", "flowgate-agent@site-a.service"}) {
    CommandResult result = RunCommand({systemd_analyze, "verify", (units / unit).string()});
    EXPECT_EQ(result.exit_code, 0) << unit << ":\n" << result.err;
    // Unknown keys and bad values are only warnings to verify: any line about our unit fails.
    EXPECT_EQ(result.err.find(unit), std::string::npos) << result.err;
  }
}

}  // namespace
}  // namespace flowgate::testing
