// The one flag parser of every binary, and the daemons' TOML config files read through it.
#include "flowgate/common/flags.h"

#include <gtest/gtest.h>

#include <fstream>

#include "../support/temp_dir.h"

namespace flowgate {
namespace {

// The shape of a daemon's flags: strings, a repeatable option, a switch, typed values.
struct DaemonSettings {
  std::string data_dir;
  std::vector<std::string> local_nets;
  bool plaintext = false;
  uint64_t workers = 1;
  uint64_t interval_ms = 15'000;
};

class FlagParserTest : public ::testing::Test {
 protected:
  FlagParserTest() : flags_("flowgate-test", "flowgate-test [options]", "A test daemon.") {
    flags_.AddString("data-dir", "d", "DIR", "Where data goes", &settings_.data_dir);
    flags_.AddOption("local-net", "", "CIDR", "A local network (repeatable)",
                     [this](std::string_view v) {
                       settings_.local_nets.emplace_back(v);
                       return Status::Ok();
                     });
    flags_.AddBool("plaintext", "No encryption", &settings_.plaintext);
    flags_.AddUint("workers", "N", "Worker threads", &settings_.workers, 1, 64);
    flags_.AddDuration("interval", "Status interval", &settings_.interval_ms);
    flags_.AddConfigFile();
  }

  std::string WriteConfig(const std::string& text) {
    const std::string path = dir_.Sub("test.toml");
    std::ofstream(path) << text;
    return path;
  }

  testing::TempDir dir_;
  DaemonSettings settings_;
  FlagParser flags_;
};

TEST_F(FlagParserTest, CommandLineFormsAndPositionals) {
  ASSERT_TRUE(
      flags_.Parse({"-d", "/a", "--workers=4", "--plaintext", "--local-net", "10.0.0.0/8", "rest"})
          .ok());
  EXPECT_EQ(settings_.data_dir, "/a");
  EXPECT_EQ(settings_.workers, 4u);
  EXPECT_TRUE(settings_.plaintext);
  EXPECT_EQ(settings_.local_nets, std::vector<std::string>{"10.0.0.0/8"});
  EXPECT_EQ(flags_.positional(), std::vector<std::string>{"rest"});
}

TEST_F(FlagParserTest, BadCommandLinesNameTheProblem) {
  Status unknown = flags_.Parse({"--no-such-flag"});
  EXPECT_NE(unknown.message().find("unknown flag '--no-such-flag'"), std::string::npos)
      << unknown.message();
  Status range = flags_.Parse({"--workers", "0"});
  EXPECT_NE(range.message().find("from 1 to 64"), std::string::npos) << range.message();
  Status missing = flags_.Parse({"--data-dir"});
  EXPECT_NE(missing.message().find("needs a value (DIR)"), std::string::npos) << missing.message();
  Status switch_value = flags_.Parse({"--plaintext=yes"});
  EXPECT_NE(switch_value.message().find("takes no value"), std::string::npos);
}

TEST_F(FlagParserTest, ConfigFileSetsEveryKindOfFlag) {
  const std::string path = WriteConfig(
      "# a daemon\n"
      "data-dir = \"/var/lib/flowgate\"\n"
      "local-net = [\"10.0.0.0/8\", \"192.168.0.0/16\"]\n"
      "plaintext = true\n"
      "workers = 8\n"
      "interval = \"30s\"\n");
  ASSERT_TRUE(flags_.Parse({"--config", path}).ok());
  EXPECT_EQ(settings_.data_dir, "/var/lib/flowgate");
  EXPECT_EQ(settings_.local_nets, (std::vector<std::string>{"10.0.0.0/8", "192.168.0.0/16"}));
  EXPECT_TRUE(settings_.plaintext);
  EXPECT_EQ(settings_.workers, 8u);
  EXPECT_EQ(settings_.interval_ms, 30'000u);
}

TEST_F(FlagParserTest, CommandLineOverridesTheFileKeyByKey) {
  const std::string path = WriteConfig(
      "data-dir = \"/from/file\"\n"
      "local-net = [\"10.0.0.0/8\", \"192.168.0.0/16\"]\n"
      "workers = 8\n");
  // Given after --config or before it, a flag replaces the file's value(s) for its key;
  // keys the command line does not name keep the file's values.
  ASSERT_TRUE(
      flags_.Parse({"--local-net", "172.16.0.0/12", "--config=" + path, "-d", "/from/flags"}).ok());
  EXPECT_EQ(settings_.data_dir, "/from/flags");
  EXPECT_EQ(settings_.local_nets, std::vector<std::string>{"172.16.0.0/12"});
  EXPECT_EQ(settings_.workers, 8u);
}

TEST_F(FlagParserTest, FalseLeavesASwitchOff) {
  ASSERT_TRUE(flags_.Parse({"--config", WriteConfig("plaintext = false\n")}).ok());
  EXPECT_FALSE(settings_.plaintext);
}

TEST_F(FlagParserTest, EveryProblemOfAFileIsReportedWithItsLine) {
  const std::string path = WriteConfig(
      "data-dir = \"/ok\"\n"
      "workers = 0\n"
      "colour = \"blue\"\n"
      "plaintext = \"yes\"\n"
      "interval = true\n"
      "[section]\n"
      "x = 1\n");
  Status status = flags_.Parse({"--config", path});
  ASSERT_FALSE(status.ok());
  const std::string& message = status.message();
  EXPECT_NE(message.find(path + ":2: --workers takes a whole number from 1 to 64, not '0'"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find(path + ":3: unknown setting 'colour' (settings: data-dir, local-net,"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find(path + ":4: 'plaintext' takes true or false"), std::string::npos)
      << message;
  EXPECT_NE(message.find(path + ":5: 'interval' takes a value (DURATION), not true or false"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find(path + ":6: 'section' is a table"), std::string::npos) << message;
}

TEST_F(FlagParserTest, InvalidTomlNamesLineAndColumn) {
  const std::string path = WriteConfig("data-dir = \"/ok\"\nworkers = = 3\n");
  Status status = flags_.Parse({"--config", path});
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.message().rfind(path + ":2:", 0), 0u) << status.message();
}

TEST_F(FlagParserTest, MissingConfigFileIsNamed) {
  Status status = flags_.Parse({"--config", dir_.Sub("absent.toml")});
  EXPECT_NE(status.message().find("cannot read config file " + dir_.Sub("absent.toml")),
            std::string::npos)
      << status.message();
}

TEST_F(FlagParserTest, CheckConfigIsRequestedAndListedInHelp) {
  ASSERT_TRUE(flags_.Parse({"--config", WriteConfig("workers = 2\n"), "--check-config"}).ok());
  EXPECT_TRUE(flags_.check_config_requested());
  EXPECT_NE(flags_.Help().find("--config FILE"), std::string::npos);
  EXPECT_NE(flags_.Help().find("--check-config"), std::string::npos);
}

}  // namespace
}  // namespace flowgate
