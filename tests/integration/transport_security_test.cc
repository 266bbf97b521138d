// CURVE between agents and gateway (issue 4): keys from `flowgate keygen`, an allow-list
// enforced through ZAP and re-read on SIGHUP. An agent whose key is not listed delivers
// nothing, and the refusal is counted and logged.
#include <signal.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "../support/prometheus.h"
#include "transport_support.h"

namespace flowgate::testing::transport {
namespace {

using std::chrono::seconds;

class TransportSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const std::string name : {"gateway", "listed", "unlisted"}) {
      CommandResult made =
          RunCommand({BinaryPath("flowgate"), "keygen", "--name", name, "--out", dir_.Sub("keys")});
      ASSERT_EQ(made.exit_code, 0) << made.err;
    }
    std::ofstream(allow_file_) << "# agents allowed to deliver\n" << ReadFile("listed.pub");
  }

  std::string Key(const std::string& file) const { return dir_.Sub("keys/" + file); }
  std::string ReadFile(const std::string& file) const {
    std::ifstream in(Key(file));
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  CommandResult RunAgent(const std::string& endpoint, const std::string& name,
                         const std::string& key, const std::string& timeout) {
    std::vector<std::string> argv = {BinaryPath("flowgate-agent"),
                                     "-r",
                                     capture_,
                                     "--gateway",
                                     endpoint,
                                     "--name",
                                     name,
                                     "--json-out",
                                     dir_.Sub(name + ".json"),
                                     "--key",
                                     Key(key + ".key"),
                                     "--gateway-key",
                                     Key("gateway.pub"),
                                     "--delivery-timeout",
                                     timeout};
    return RunCommand(argv, seconds(120));
  }

  TempDir dir_;
  const std::string allow_file_ = dir_.Sub("agents.allow");
  const std::string data_dir_ = dir_.Sub("data");
  const std::string capture_ = MakeCapture(dir_, "small.pcap", 200, 31, "5s");
};

TEST_F(TransportSecurityTest, KeygenWritesOwnerOnlyKeyFiles) {
  for (const std::string file : {"gateway.key", "gateway.pub", "listed.key"}) {
    struct stat st {};
    ASSERT_EQ(::stat(Key(file).c_str(), &st), 0) << file;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << file;
  }
  CommandResult again = RunCommand(
      {BinaryPath("flowgate"), "keygen", "--name", "gateway", "--out", dir_.Sub("keys")});
  EXPECT_NE(again.exit_code, 0) << "an existing key is never overwritten";
  EXPECT_NE(again.err.find("gateway.key"), std::string::npos) << again.err;
}

TEST_F(TransportSecurityTest, OnlyListedAgentsDeliverAndSighupReloadsTheList) {
  GatewayProcess gateway({"--data-dir", data_dir_, "--json-socket", dir_.Sub("gw.sock"),
                          "--agents-key", Key("gateway.key"), "--agents-allow", allow_file_,
                          "--metrics", "127.0.0.1:0"});
  ASSERT_TRUE(gateway.ready()) << gateway.log();
  const std::string metrics = MetricsAddressFromLog(gateway.log());
  const auto unauthorized = [&metrics]() -> double {
    std::string error;
    std::optional<Scrape> scrape = ScrapeMetrics(metrics, &error);
    EXPECT_TRUE(scrape.has_value()) << error;
    return scrape ? scrape->Get("flowgate_gateway_handshakes_unauthorized_total").value_or(-1) : -1;
  };

  CommandResult listed = RunAgent(gateway.endpoint(), "listed", "listed", "60s");
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(unauthorized(), 0.0);
  CommandResult unlisted = RunAgent(gateway.endpoint(), "unlisted", "unlisted", "3s");
  EXPECT_NE(unlisted.exit_code, 0) << "an unlisted agent cannot deliver";
  ASSERT_TRUE(gateway.WaitForLog("is not on the allow-list (1 so far)")) << gateway.log();
  // Counted where an operator looks: the metrics (the agent retries, so at least once).
  EXPECT_GE(unauthorized(), 1.0);

  // Listing it and sending SIGHUP lets it in, without a restart.
  std::ofstream(allow_file_, std::ios::app) << ReadFile("unlisted.pub");
  ASSERT_EQ(::kill(gateway.pid(), SIGHUP), 0);
  ASSERT_TRUE(gateway.WaitForLog("2 agent keys")) << gateway.log();
  CommandResult admitted = RunAgent(gateway.endpoint(), "admitted", "unlisted", "60s");
  EXPECT_EQ(admitted.exit_code, 0) << admitted.err;
  EXPECT_EQ(gateway.Stop(), 0) << gateway.log();

  std::map<std::string, EventBag> stored = StoredEventsByAgent(data_dir_);
  EXPECT_TRUE(SameEvents(JsonOutEvents(dir_.Sub("listed.json")), stored["listed"]));
  EXPECT_TRUE(SameEvents(JsonOutEvents(dir_.Sub("admitted.json")), stored["admitted"]));
  EXPECT_EQ(stored.count("unlisted"), 0u) << "nothing of the unlisted agent is stored";
}

TEST_F(TransportSecurityTest, GatewayRefusesToStartWithoutKeysOrPlaintext) {
  CommandResult bare = RunCommand({BinaryPath("flowgate-gateway"), "--data-dir", data_dir_});
  EXPECT_EQ(bare.exit_code, 2);
  EXPECT_NE(bare.err.find("--agents-plaintext"), std::string::npos) << bare.err;
  CommandResult agent =
      RunCommand({BinaryPath("flowgate-agent"), "-r", capture_, "--gateway", "tcp://127.0.0.1:1"});
  EXPECT_EQ(agent.exit_code, 2);
  EXPECT_NE(agent.err.find("--plaintext"), std::string::npos) << agent.err;
}

}  // namespace
}  // namespace flowgate::testing::transport
