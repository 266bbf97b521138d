// Retention against a real gateway: with a short age and a small size cap, old data goes,
// the store stays under the cap, and queries for the dropped range return nothing and say so.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "history_support.h"

namespace flowgate::testing {
namespace {

constexpr uint64_t kCapBytes = 4u << 20;

uint64_t DirectoryBytes(const std::string& path) {
  uint64_t bytes = 0;
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator(path, ignored)) {
    if (entry.is_regular_file(ignored)) bytes += entry.file_size(ignored);
  }
  return bytes;
}

uint64_t NowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// `count` recent flows (first seen in the last 50 minutes) with incompressible host names,
// so the store's size grows with what is sent.
std::vector<v1::Event> RecentFlows(DataSet& data, int first_n, int count) {
  std::vector<v1::Event> events;
  const uint64_t now = NowMs();
  for (int n = first_n; n < first_n + count; ++n) {
    std::string host;
    for (int i = 0; i < 160; ++i) host += static_cast<char>('a' + data.Uniform(26));
    v1::Event e = MakeFlowEvent(n, "TLS", "YouTube", host + ".example.com");
    const uint64_t first = now - 50 * 60'000 + data.Uniform(50 * 60'000);
    e.mutable_flow()->mutable_flow()->set_first_seen_at(first);
    e.mutable_flow()->mutable_flow()->set_last_seen_at(first);
    events.push_back(std::move(e));
  }
  return events;
}

TEST(HistoryRetentionTest, OldDataGoesAndTheStoreStaysUnderItsCap) {
  TempDir dir;
  HistoryGateway gateway(
      dir.Sub("data"), dir.Sub("sock"),
      {"--retention", "1h", "--max-disk", "4MiB", "--retention-interval", "200ms"});
  ASSERT_TRUE(gateway.ready()) << gateway.log();
  TestAgent agent(gateway.process().endpoint(), "site-a", "site-a");
  DataSet data(11);
  // Flows of 2023 (older than the hour kept), then far more recent data than the cap holds.
  ASSERT_TRUE(SendAll(agent, data.MakeFlows(agent.identity(), 1, 300)));
  for (int round = 0; round < 30; ++round) {
    ASSERT_TRUE(SendAll(agent, RecentFlows(data, 10'000 + round * 2000, 2000), 500))
        << gateway.log();
  }

  v1::QueryFlowsRequest old_range;
  old_range.mutable_range()->set_from_ms(kBaseMs - kHourMs);
  old_range.mutable_range()->set_to_ms(kBaseMs + 12 * kHourMs);
  old_range.set_limit(10);
  v1::QueryFlowsResponse response;
  uint64_t bytes = 0;
  // Retention runs every 200 ms: wait (bounded) for it to catch up with what was sent.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (true) {
    response.Clear();
    grpc::Status status = gateway.stub().QueryFlows(CallContext().get(), old_range, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    bytes = DirectoryBytes(dir.Sub("data"));
    if ((response.flows_size() == 0 && bytes <= kCapBytes) ||
        std::chrono::steady_clock::now() > deadline) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling a bounded wait
  }
  EXPECT_EQ(response.flows_size(), 0) << "flows of 2023 outlived a 1h retention";
  EXPECT_GT(response.retained_from_ms(), old_range.range().to_ms())
      << "the response does not say the range was dropped";
  EXPECT_LE(bytes, kCapBytes) << "store still over its cap after 60 s\n" << gateway.log();
  EXPECT_TRUE(gateway.process().WaitForLog("dropped")) << gateway.log();

  // The rollups of the dropped range went with it: Top from rollups over it is empty.
  v1::TopRequest top;
  *top.mutable_range() = old_range.range();
  top.set_source(v1::TOP_SOURCE_ROLLUPS);
  v1::TopResponse top_response;
  grpc::Status status = gateway.stub().Top(CallContext().get(), top, &top_response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(top_response.entries_size(), 0) << "rollups of 2023 outlived a 1h retention";
  // The recent flows the size cap kept (each active in one instant) are still rolled up.
  v1::QueryFlowsRequest all;
  all.set_limit(1);
  response.Clear();
  status = gateway.stub().QueryFlows(CallContext().get(), all, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  top.mutable_range()->Clear();
  status = gateway.stub().Top(CallContext().get(), top, &top_response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(top_response.entries_size() > 0, response.flows_size() > 0)
      << "flows kept: " << response.flows_size()
      << ", rollup groups: " << top_response.entries_size();
}

}  // namespace
}  // namespace flowgate::testing
