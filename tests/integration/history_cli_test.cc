// The flowgate CLI against a real gateway's gRPC API: query --json, top, agents, tail.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "../support/process.h"
#include "history_support.h"

namespace flowgate::testing {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

class HistoryCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    gateway_ = std::make_unique<HistoryGateway>(dir_.Sub("data"), dir_.Sub("sock"));
    ASSERT_TRUE(gateway_->ready()) << gateway_->log();
    int n = 1;
    for (const char* site : {"site-a", "site-b"}) {
      TestAgent agent(gateway_->process().endpoint(), site, site);
      ASSERT_TRUE(SendAll(agent, data_.MakeFlows(agent.identity(), n, 60)));
      n += 60;
    }
  }

  CommandResult Cli(std::vector<std::string> args) {
    args.insert(args.begin(), {BinaryPath("flowgate"), "--gateway", gateway_->address()});
    return RunCommand(args);
  }

  TempDir dir_;
  DataSet data_{3};
  std::unique_ptr<HistoryGateway> gateway_;
};

TEST_F(HistoryCliTest, QueryJsonPrintsEveryMatchingFlowNamingItsAgent) {
  CommandResult r = Cli({"query", "--json", "--limit", "1000", "--from", "2023-11-14T00:00:00Z",
                         "--filter", "agent == \"site-b\""});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> lines = Lines(r.out);
  size_t expected = 0;
  for (const auto& [key, flow] : data_.flows()) expected += flow.agent.name() == "site-b";
  EXPECT_EQ(lines.size(), expected) << r.out;
  for (const std::string& line : lines) {
    nlohmann::json flow = nlohmann::json::parse(line);
    EXPECT_EQ(flow["agent"]["name"], "site-b") << line;
    EXPECT_FALSE(flow["agent"]["id"].get<std::string>().empty()) << line;
  }
  // Paging inside the CLI: a small page size still prints every flow once.
  r = Cli({"query", "--json", "--limit", "7"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Lines(r.out).size(), 7u);
}

TEST_F(HistoryCliTest, TopAgentsAndTail) {
  CommandResult r = Cli({"top", "--by", "agent", "--metric", "flows"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("site-a"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("site-b"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("60"), std::string::npos) << r.out;

  r = Cli({"agents", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(Lines(r.out).size(), 2u) << r.out;
  EXPECT_EQ(nlohmann::json::parse(Lines(r.out)[0])["identity"]["name"], "site-a");

  r = Cli({"tail", "--from-start", "--count", "25", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> events = Lines(r.out);
  ASSERT_EQ(events.size(), 25u);
  EXPECT_EQ(nlohmann::json::parse(events[24])["gateway_sequence"], "25");

  r = Cli({"top", "--by", "colour"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--by takes"), std::string::npos) << r.err;
  r = Cli({"query", "--filter", "app =="});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("column"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace flowgate::testing
