// What an operator installs: the example configs are valid for the real binaries, a broken
// config is refused with its line, `cmake --install` puts everything in place, the
// installed systemd units pass systemd's own checker, and the container files run the
// binaries with valid flags on an image that holds exactly the libraries they link.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

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

TEST(DeployTest, ComposeRunsTheBinariesWithValidFlags) {
  // Each service's `command:` is a one-line flow sequence (JSON), as compose.yaml keeps it;
  // ${VAR:-default} is what compose substitutes when VAR is unset.
  std::istringstream lines(ReadAll(kSourceDir / "deploy" / "container" / "compose.yaml"));
  const std::regex image(R"(^    image: (flowgate-(gateway|agent))$)");
  const std::regex default_value(R"(\$\{[A-Z0-9_]+:-([^}]*)\})");
  std::string line, binary;
  bool own_entrypoint = false;
  int checked = 0;
  while (std::getline(lines, line)) {
    std::smatch match;
    if (line.rfind("  ", 0) == 0 && line.size() > 2 && line[2] != ' ') {
      binary.clear();  // a new service
      own_entrypoint = false;
    }
    if (std::regex_search(line, match, image)) binary = match[1];
    if (line.rfind("    entrypoint:", 0) == 0) own_entrypoint = true;
    if (line.rfind("    command: [", 0) != 0 || own_entrypoint) continue;
    ASSERT_FALSE(binary.empty()) << "a command for no flowgate image: " << line;
    const nlohmann::json args = nlohmann::json::parse(line.substr(line.find('[')));
    std::vector<std::string> argv = {BinaryPath(binary)};
    for (const auto& arg : args) {
      argv.push_back(std::regex_replace(arg.get<std::string>(), default_value, "$1"));
    }
    argv.push_back("--check-config");
    CommandResult result = RunCommand(argv);
    EXPECT_EQ(result.exit_code, 0) << line << "\n" << result.err;
    ++checked;
  }
  EXPECT_EQ(checked, 3) << "compose.yaml should run one gateway and two agents";
}

// The packages that hold the shared libraries `binaries` link (their NEEDED entries).
std::set<std::string> LinkedPackages(const std::vector<std::string>& binaries) {
  const std::string multiarch =
      RunCommand({"/usr/bin/dpkg-architecture", "-qDEB_HOST_MULTIARCH"}).out;
  const std::string libdir = "/" + multiarch.substr(0, multiarch.find('\n')) + "/";
  std::set<std::string> libraries;
  const std::regex needed(R"(\(NEEDED\).*\[(.+)\])");
  for (const std::string& binary : binaries) {
    std::istringstream dynamic(RunCommand({"/usr/bin/readelf", "-d", binary}).out);
    for (std::string line; std::getline(dynamic, line);) {
      std::smatch match;
      if (std::regex_search(line, match, needed)) libraries.insert(match[1]);
    }
  }
  EXPECT_GT(libraries.size(), 5u);
  std::vector<std::string> query = {"/usr/bin/dpkg", "-S"};
  for (const std::string& library : libraries) query.push_back("*" + libdir + library);
  CommandResult owners = RunCommand(query);
  EXPECT_EQ(owners.exit_code, 0) << "a linked library is in no package: " << owners.err;
  // "libfoo1:amd64: /usr/lib/x86_64-linux-gnu/libfoo.so.1" -> "libfoo1"
  std::set<std::string> packages;
  std::istringstream lines(owners.out);
  for (std::string entry; std::getline(lines, entry);) {
    packages.insert(entry.substr(0, entry.find_first_of(":,")));
  }
  return packages;
}

TEST(DeployTest, ContainerImageInstallsExactlyTheLibrariesTheBinariesLink) {
  // The runtime stage's package list: the lines after `--no-install-recommends \`.
  std::istringstream lines(ReadAll(kSourceDir / "deploy" / "container" / "Dockerfile"));
  std::set<std::string> listed;
  bool in_list = false;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("--no-install-recommends") != std::string::npos) {
      in_list = true;
      continue;
    }
    if (!in_list) continue;
    if (line.rfind(" &&", 0) == 0) break;
    std::istringstream words(line);
    for (std::string word; words >> word;) {
      if (word != "\\") listed.insert(word);
    }
  }
  ASSERT_FALSE(listed.empty()) << "no runtime package list found in the Dockerfile";
  std::set<std::string> needed = LinkedPackages(
      {BinaryPath("flowgate-gateway"), BinaryPath("flowgate-agent"), BinaryPath("flowgate")});
  for (const char* in_every_image : {"libc6", "libstdc++6", "libgcc-s1"}) {
    needed.erase(in_every_image);
  }
  for (const std::string& package : needed) {
    EXPECT_EQ(listed.count(package), 1u)
        << "the binaries link a library of " << package << ", which the image does not install";
  }
  for (const std::string& package : listed) {
    EXPECT_EQ(needed.count(package), 1u)
        << "the image installs " << package << ", which no binary links";
  }
}

}  // namespace
}  // namespace flowgate::testing
