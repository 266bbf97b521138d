// Subscribe over gRPC: cut off mid-stream, the gateway restarted, resumed from the last
// cursor: every event arrives exactly once, in log order.
#include <gtest/gtest.h>

#include <map>

#include "history_support.h"

namespace flowgate::testing {
namespace {

// Reads from `reader` until `want` events arrived in total or the stream ends; appends the
// sequence numbers and digests seen.
void ReadEvents(grpc::ClientReader<v1::SubscribeResponse>& reader, size_t want,
                std::vector<uint64_t>* sequences, std::vector<std::string>* digests) {
  v1::SubscribeResponse message;
  while (sequences->size() < want && reader.Read(&message)) {
    EXPECT_EQ(message.dropped(), 0u);
    for (const v1::StoredEvent& event : message.events()) {
      sequences->push_back(event.gateway_sequence());
      digests->push_back(event.event().has_flow() ? event.event().flow().flow().digest()
                         : event.event().has_flow_purge()
                             ? event.event().flow_purge().flow().digest()
                             : event.event().flow_stats().flow().digest());
    }
  }
}

TEST(HistorySubscribeTest, ResumedAfterAGatewayRestartYieldsEveryEventOnce) {
  TempDir dir;
  DataSet data(99);
  std::vector<uint64_t> sequences;
  std::vector<std::string> digests, sent;
  std::string boot_one_agent_id;
  {
    HistoryGateway gateway(dir.Sub("data"), dir.Sub("sock"));
    ASSERT_TRUE(gateway.ready()) << gateway.log();
    TestAgent agent(gateway.process().endpoint(), "site-a", "site-a");
    const std::vector<v1::Event> events = data.MakeFlows(agent.identity(), 1, 300);
    for (const v1::Event& e : events) {
      sent.push_back(e.has_flow()         ? e.flow().flow().digest()
                     : e.has_flow_purge() ? e.flow_purge().flow().digest()
                                          : e.flow_stats().flow().digest());
    }
    // Half the events are stored before the subscription starts, half while it runs.
    const size_t half = events.size() / 2;
    ASSERT_TRUE(SendAll(agent, {events.begin(), events.begin() + static_cast<long>(half)}, 50));
    v1::SubscribeRequest request;
    request.set_from_start(true);
    request.set_max_batch(17);
    auto context = CallContext();
    auto reader = gateway.stub().Subscribe(context.get(), request);
    ASSERT_TRUE(SendAll(agent, {events.begin() + static_cast<long>(half), events.end()}, 50));
    // Cut off part-way through the second half.
    ReadEvents(*reader, half + 40, &sequences, &digests);
    ASSERT_GE(sequences.size(), half + 40) << reader->Finish().error_message();
    context->TryCancel();
    (void)reader->Finish();
    ASSERT_EQ(gateway.process().Stop(), 0) << gateway.log();
  }
  // Later events, some stored while nobody listened, some after the resumed subscription.
  HistoryGateway gateway(dir.Sub("data"), dir.Sub("sock"));
  ASSERT_TRUE(gateway.ready()) << gateway.log();
  TestAgent agent(gateway.process().endpoint(), "site-a", "site-a");
  const std::vector<v1::Event> later = data.MakeFlows(agent.identity(), 1000, 200);
  const size_t half = later.size() / 2;
  ASSERT_TRUE(SendAll(agent, {later.begin(), later.begin() + static_cast<long>(half)}, 50));
  v1::SubscribeRequest request;
  request.set_after_sequence(sequences.back());
  auto context = CallContext();
  auto reader = gateway.stub().Subscribe(context.get(), request);
  ASSERT_TRUE(SendAll(agent, {later.begin() + static_cast<long>(half), later.end()}, 50));
  for (const v1::Event& e : later) {
    sent.push_back(e.has_flow()         ? e.flow().flow().digest()
                   : e.has_flow_purge() ? e.flow_purge().flow().digest()
                                        : e.flow_stats().flow().digest());
  }
  ReadEvents(*reader, sent.size(), &sequences, &digests);
  context->TryCancel();
  (void)reader->Finish();

  ASSERT_EQ(sequences.size(), sent.size()) << "events missing or extra after the resume";
  for (size_t i = 0; i < sequences.size(); ++i) {
    ASSERT_EQ(sequences[i], i + 1) << "gap or duplicate at position " << i;
  }
  EXPECT_EQ(digests, sent);
}

TEST(HistorySubscribeTest, AStreamFromNowNamesItsCursorBeforeAnyEvent) {
  TempDir dir;
  HistoryGateway gateway(dir.Sub("data"), dir.Sub("sock"));
  ASSERT_TRUE(gateway.ready()) << gateway.log();
  TestAgent agent(gateway.process().endpoint(), "site-a", "site-a");
  DataSet data(7);
  const std::vector<v1::Event> before = data.MakeFlows(agent.identity(), 1, 20);
  ASSERT_TRUE(SendAll(agent, before));
  v1::SubscribeRequest request;
  request.set_from_now(true);
  auto context = CallContext();  // its deadline bounds every Read below
  auto reader = gateway.stub().Subscribe(context.get(), request);
  // Nothing new is stored, yet the subscriber learns where it stands: a client cut off now
  // resumes from here instead of from a later "now".
  v1::SubscribeResponse first;
  ASSERT_TRUE(reader->Read(&first));
  EXPECT_EQ(first.events_size(), 0);
  EXPECT_EQ(first.cursor(), before.size());
  // Later messages carry the cursor up to the last event they cover.
  const std::vector<v1::Event> after = data.MakeFlows(agent.identity(), 100, 20);
  ASSERT_TRUE(SendAll(agent, after));
  v1::SubscribeResponse next;
  uint64_t last_sequence = 0;
  while (reader->Read(&next)) {
    for (const v1::StoredEvent& event : next.events()) {
      EXPECT_GT(event.gateway_sequence(), before.size());
      last_sequence = event.gateway_sequence();
    }
    EXPECT_GE(next.cursor(), last_sequence);
    if (next.cursor() >= before.size() + after.size()) break;
  }
  EXPECT_EQ(next.cursor(), before.size() + after.size());
  context->TryCancel();
  (void)reader->Finish();
}

TEST(HistorySubscribeTest, FilterAppliesToTheStream) {
  TempDir dir;
  HistoryGateway gateway(dir.Sub("data"), dir.Sub("sock"));
  ASSERT_TRUE(gateway.ready()) << gateway.log();
  TestAgent a(gateway.process().endpoint(), "site-a", "site-a");
  TestAgent b(gateway.process().endpoint(), "site-b", "site-b");
  DataSet data(5);
  ASSERT_TRUE(SendAll(a, data.MakeFlows(a.identity(), 1, 50)));
  const std::vector<v1::Event> b_events = data.MakeFlows(b.identity(), 100, 50);
  ASSERT_TRUE(SendAll(b, b_events));
  v1::SubscribeRequest request;
  request.set_from_start(true);
  request.set_filter("agent == \"site-b\" and type == \"flow\"");
  auto context = CallContext();
  auto reader = gateway.stub().Subscribe(context.get(), request);
  size_t flows = 0;
  for (const v1::Event& e : b_events) flows += e.has_flow();
  v1::SubscribeResponse message;
  size_t got = 0;
  while (got < flows && reader->Read(&message)) {
    for (const v1::StoredEvent& event : message.events()) {
      EXPECT_EQ(event.agent().name(), "site-b");
      EXPECT_TRUE(event.event().has_flow());
      ++got;
    }
  }
  context->TryCancel();
  grpc::Status status = reader->Finish();
  EXPECT_EQ(got, flows) << status.error_message();
}

}  // namespace
}  // namespace flowgate::testing
