#include "flowgate/storage/flow_store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "../support/temp_dir.h"

namespace flowgate::storage {
namespace {

v1::Envelope MakeBatch(const std::string& boot, uint64_t sequence, const std::string& digest,
                       uint64_t local_bytes) {
  v1::Envelope envelope;
  envelope.set_version(v1::PROTOCOL_VERSION_1);
  envelope.set_sequence(sequence);
  auto* agent = envelope.mutable_agent();
  agent->set_id("agent-1");
  agent->set_name("probe-1");
  agent->set_site("site-a");
  agent->set_boot_id(boot);
  auto* flow = envelope.add_events()->mutable_flow();
  flow->mutable_context()->set_interface("eth0");
  flow->mutable_flow()->set_digest(digest);
  flow->mutable_flow()->set_detected_protocol_name("TLS");
  flow->mutable_flow()->set_first_seen_at(1000);
  auto* purge = envelope.add_events()->mutable_flow_purge();
  purge->set_reason(v1::PURGE_REASON_TERMINATED);
  purge->mutable_flow()->set_digest(digest);
  purge->mutable_flow()->set_local_bytes(local_bytes);
  purge->mutable_flow()->set_total_bytes(local_bytes);
  purge->mutable_flow()->set_last_seen_at(2000);
  return envelope;
}

std::unique_ptr<FlowStore> OpenOrDie(const std::string& path) {
  Result<std::unique_ptr<FlowStore>> store = OpenRocksFlowStore({.path = path});
  EXPECT_TRUE(store.ok()) << (store.ok() ? "" : store.status().message());
  return std::move(store).value();
}

TEST(FlowStore, AppliesBatchAndFoldsFlowEvents) {
  testing::TempDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  std::vector<v1::StoredEvent> stored;
  auto result = store->Append(MakeBatch("boot-1", 1, "d1", 500), 42, &stored);
  ASSERT_TRUE(result.ok()) << result.status().message();
  EXPECT_EQ(result->outcome, AppendOutcome::kApplied);
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].gateway_sequence(), 1u);
  EXPECT_EQ(stored[1].gateway_sequence(), 2u);
  EXPECT_EQ(stored[0].agent().name(), "probe-1");

  auto flow = store->GetFlow("agent-1", "d1");
  ASSERT_TRUE(flow.ok());
  ASSERT_TRUE(flow->has_value());
  EXPECT_EQ((*flow)->metadata().detected_protocol_name(), "TLS");
  EXPECT_EQ((*flow)->counters().local_bytes(), 500u);
  EXPECT_EQ((*flow)->counters().last_seen_at(), 2000u);
  EXPECT_EQ((*flow)->purge_reason(), v1::PURGE_REASON_TERMINATED);
  EXPECT_EQ((*flow)->agent().site(), "site-a");
}

TEST(FlowStore, ResentBatchIsAppliedOnce) {
  testing::TempDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  ASSERT_TRUE(store->Append(MakeBatch("boot-1", 1, "d1", 500), 1, nullptr).ok());
  std::vector<v1::StoredEvent> stored;
  auto again = store->Append(MakeBatch("boot-1", 1, "d1", 500), 2, &stored);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->outcome, AppendOutcome::kDuplicate);
  EXPECT_TRUE(stored.empty());
  EXPECT_EQ(store->last_sequence(), 2u);
  auto flow = store->GetFlow("agent-1", "d1");
  EXPECT_EQ((*flow)->counters().local_bytes(), 500u) << "a duplicate must not add counters";

  // A new boot starts its own sequence; a skipped sequence is counted as a gap. Past a gap
  // only when the agent says it gave the skipped ones up (resend floor, issue 4).
  v1::Envelope skipping = MakeBatch("boot-2", 3, "d2", 1);
  skipping.set_resend_floor(3);
  auto next = store->Append(skipping, 3, nullptr);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->outcome, AppendOutcome::kApplied);
  EXPECT_EQ(next->missing_before, 2u);
  auto agents = store->ListAgents();
  ASSERT_TRUE(agents.ok());
  ASSERT_EQ(agents->size(), 1u);
  EXPECT_EQ((*agents)[0].batches_duplicate(), 1u);
  EXPECT_EQ((*agents)[0].batches_applied(), 2u);
  EXPECT_EQ((*agents)[0].sequence_gaps(), 2u);
}

TEST(FlowStore, EverythingSurvivesReopen) {
  testing::TempDir dir;
  {
    auto store = OpenOrDie(dir.Sub("db"));
    for (uint64_t seq = 1; seq <= 10; ++seq) {
      ASSERT_TRUE(
          store->Append(MakeBatch("boot-1", seq, "d" + std::to_string(seq), seq), 1, nullptr).ok());
    }
  }
  auto store = OpenOrDie(dir.Sub("db"));
  EXPECT_EQ(store->last_sequence(), 20u);
  size_t flows = 0;
  ASSERT_TRUE(store->ScanFlows([&](const v1::FlowRecord&) { return ++flows, true; }).ok());
  EXPECT_EQ(flows, 10u);
  std::vector<v1::StoredEvent> events;
  ASSERT_TRUE(store->ReadEvents(15, 100, &events).ok());
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events.front().gateway_sequence(), 16u);
  // The delivery mark survived too: a resend after restart is still a duplicate.
  auto again = store->Append(MakeBatch("boot-1", 10, "d10", 10), 1, nullptr);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->outcome, AppendOutcome::kDuplicate);
  // The next append continues the log rather than overwriting it.
  std::vector<v1::StoredEvent> stored;
  ASSERT_TRUE(store->Append(MakeBatch("boot-1", 11, "d11", 1), 1, &stored).ok());
  EXPECT_EQ(stored.front().gateway_sequence(), 21u);
}

TEST(FlowStore, SecondOpenOfTheSameDirectoryFailsClearly) {
  testing::TempDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  auto second = OpenRocksFlowStore({.path = dir.Sub("db")});
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("in use"), std::string::npos)
      << second.status().message();
}

TEST(FlowStore, RejectsBatchWithoutIdentity) {
  testing::TempDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  v1::Envelope envelope = MakeBatch("", 1, "d", 1);
  auto result = store->Append(envelope, 1, nullptr);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
}

// Group commit: one AppendBatch decides each batch as Append would, in order, a later
// batch of a boot seeing the mark as advanced by the earlier ones in the same group.
TEST(FlowStore, AppendBatchDecidesEachBatchInOrder) {
  testing::TempDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  std::vector<AppendItem> items(6);
  items[0].envelope = MakeBatch("boot-1", 1, "d1", 100);
  items[1].envelope = MakeBatch("boot-1", 2, "d2", 200);
  items[2].envelope = MakeBatch("boot-1", 2, "d2", 200);  // resent within the group
  items[3].envelope = MakeBatch("boot-1", 4, "d4", 400);  // ahead of 3, no resend floor
  items[4].envelope = MakeBatch("", 1, "dx", 1);          // no boot id
  items[5].envelope = MakeBatch("boot-1", 3, "d1", 5);    // in order again; d1 once more
  for (AppendItem& item : items) item.received_at_ms = 7;
  ASSERT_TRUE(store->AppendBatch(items, true).ok());

  ASSERT_TRUE(items[0].result.ok());
  EXPECT_EQ(items[0].result->outcome, AppendOutcome::kApplied);
  EXPECT_EQ(items[1].result->outcome, AppendOutcome::kApplied);
  EXPECT_EQ(items[2].result->outcome, AppendOutcome::kDuplicate);
  EXPECT_TRUE(items[2].stored.empty());
  EXPECT_EQ(items[3].result->outcome, AppendOutcome::kOutOfOrder);
  EXPECT_EQ(items[3].result->expected_sequence, 3u);
  ASSERT_FALSE(items[4].result.ok());
  EXPECT_EQ(items[4].result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(items[5].result->outcome, AppendOutcome::kApplied);
  EXPECT_EQ(store->last_sequence(), 6u);

  // The log holds the applied batches' events in order, exactly as handed on for fan-out.
  std::vector<v1::StoredEvent> log;
  ASSERT_TRUE(store->ReadEvents(0, 100, &log).ok());
  std::vector<v1::StoredEvent> handed_on;
  for (const size_t i : {0u, 1u, 5u}) {
    handed_on.insert(handed_on.end(), items[i].stored.begin(), items[i].stored.end());
  }
  ASSERT_EQ(log.size(), 6u);
  ASSERT_EQ(handed_on.size(), 6u);
  for (size_t i = 0; i < log.size(); ++i) {
    EXPECT_EQ(log[i].gateway_sequence(), i + 1);
    EXPECT_EQ(log[i].received_at(), 7u);
    EXPECT_EQ(log[i].agent().site(), "site-a");
    EXPECT_EQ(log[i].SerializeAsString(), handed_on[i].SerializeAsString()) << "event " << i;
  }
  // d1's two batches in one group add up; d4 was not applied.
  auto d1 = store->GetFlow("agent-1", "d1");
  ASSERT_TRUE(d1.ok() && d1->has_value());
  EXPECT_EQ((*d1)->counters().local_bytes(), 105u);
  auto d4 = store->GetFlow("agent-1", "d4");
  ASSERT_TRUE(d4.ok());
  EXPECT_FALSE(d4->has_value());

  auto agents = store->ListAgents();
  ASSERT_TRUE(agents.ok());
  ASSERT_EQ(agents->size(), 1u);
  EXPECT_EQ((*agents)[0].batches_received(), 5u);
  EXPECT_EQ((*agents)[0].batches_applied(), 3u);
  EXPECT_EQ((*agents)[0].batches_duplicate(), 1u);
  EXPECT_EQ((*agents)[0].batches_out_of_order(), 1u);
  EXPECT_EQ((*agents)[0].high_water_sequence(), 3u);
  // The marks are durable: the next group continues from 3.
  std::vector<AppendItem> next(1);
  next[0].envelope = MakeBatch("boot-1", 3, "d1", 5);
  ASSERT_TRUE(store->AppendBatch(next, false).ok());
  EXPECT_EQ(next[0].result->outcome, AppendOutcome::kDuplicate);
}

// The log keeps each event as the agent sent it: decoded with its wire bytes (as ingest
// does) or without (any other caller), the stored events are the sent ones, fields this
// build does not know included.
TEST(FlowStore, StoresEachEventAsTheAgentSentIt) {
  testing::TempDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  v1::Envelope sent = MakeBatch("boot-1", 1, "d1", 100);
  // A newer agent's field (number 900, a string) in the first event.
  sent.mutable_events(0)
      ->GetReflection()
      ->MutableUnknownFields(sent.mutable_events(0))
      ->AddLengthDelimited(900, "from a newer agent");
  const std::string frame = sent.SerializeAsString();
  std::vector<AppendItem> items(2);
  ASSERT_TRUE(DecodeEnvelope(frame, frame.size(), &items[0].envelope, &items[0].wire).ok());
  ASSERT_EQ(items[0].wire.spans.size(), 2u);
  items[1].envelope = MakeBatch("boot-1", 2, "d2", 200);  // no wire: serialized by the store
  for (AppendItem& item : items) item.received_at_ms = 7;
  ASSERT_TRUE(store->AppendBatch(items, false).ok());
  ASSERT_EQ(items[0].result->outcome, AppendOutcome::kApplied);
  ASSERT_EQ(items[1].result->outcome, AppendOutcome::kApplied);

  std::vector<v1::StoredEvent> log;
  ASSERT_TRUE(store->ReadEvents(0, 100, &log).ok());
  ASSERT_EQ(log.size(), 4u);
  const v1::Envelope second = MakeBatch("boot-1", 2, "d2", 200);
  const v1::Event* expected[] = {&sent.events(0), &sent.events(1), &second.events(0),
                                 &second.events(1)};
  for (size_t i = 0; i < log.size(); ++i) {
    EXPECT_EQ(log[i].gateway_sequence(), i + 1);
    EXPECT_EQ(log[i].agent().id(), "agent-1");
    EXPECT_EQ(log[i].event().SerializeAsString(), expected[i]->SerializeAsString()) << i;
  }
  EXPECT_EQ(log[0].event().GetReflection()->GetUnknownFields(log[0].event()).field_count(), 1);
  auto flow = store->GetFlow("agent-1", "d1");
  ASSERT_TRUE(flow.ok() && flow->has_value());
  EXPECT_EQ((*flow)->counters().local_bytes(), 100u);
}

// Pipelined group commit: a group prepared while the one before it is not yet written is
// judged as if it were (a resend of its batch is a duplicate, sequences continue), while
// readers see only what is written.
TEST(FlowStore, PreparedGroupBuildsOnTheGroupPreparedBeforeIt) {
  testing::TempDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  std::vector<AppendItem> first(1), second(2);
  first[0].envelope = MakeBatch("boot-1", 1, "d1", 100);
  second[0].envelope = MakeBatch("boot-1", 1, "d1", 100);  // resent before it was written
  second[1].envelope = MakeBatch("boot-1", 2, "d2", 200);
  for (auto* group : {&first, &second}) {
    for (AppendItem& item : *group) item.received_at_ms = 7;
  }
  std::unique_ptr<PreparedBatch> first_prepared = store->PrepareBatch(first, true);
  std::unique_ptr<PreparedBatch> second_prepared = store->PrepareBatch(second, true);
  EXPECT_EQ(store->last_sequence(), 0u) << "nothing is written yet";
  auto agents = store->ListAgents();
  ASSERT_TRUE(agents.ok());
  EXPECT_TRUE(agents->empty()) << "the registry lists what is written";

  ASSERT_TRUE(store->CommitBatch(std::move(first_prepared), first).ok());
  EXPECT_EQ(store->last_sequence(), 2u);
  // A rejection counted while a prepared group waits (as the ingest thread does while
  // another writes) must not be lost when that group's record is written: it waits for the
  // write (here on another thread) and counts into what the write left.
  Status second_written = Status::Internal("not committed");
  std::thread committer(
      [&] { second_written = store->CommitBatch(std::move(second_prepared), second); });
  ASSERT_TRUE(store->RecordRejection(first[0].envelope.agent(), "malformed", "", 8).ok());
  committer.join();
  ASSERT_TRUE(second_written.ok()) << second_written.message();
  EXPECT_EQ(store->last_sequence(), 4u);

  ASSERT_TRUE(second[0].result.ok());
  EXPECT_EQ(second[0].result->outcome, AppendOutcome::kDuplicate);
  ASSERT_TRUE(second[1].result.ok());
  EXPECT_EQ(second[1].result->outcome, AppendOutcome::kApplied);
  ASSERT_EQ(second[1].stored.size(), 2u);
  EXPECT_EQ(second[1].stored[0].gateway_sequence(), 3u);
  std::vector<v1::StoredEvent> log;
  ASSERT_TRUE(store->ReadEvents(0, 100, &log).ok());
  ASSERT_EQ(log.size(), 4u);
  for (size_t i = 0; i < log.size(); ++i) EXPECT_EQ(log[i].gateway_sequence(), i + 1);

  agents = store->ListAgents();
  ASSERT_TRUE(agents.ok());
  ASSERT_EQ(agents->size(), 1u);
  EXPECT_EQ((*agents)[0].batches_received(), 4u);
  EXPECT_EQ((*agents)[0].batches_applied(), 2u);
  EXPECT_EQ((*agents)[0].batches_duplicate(), 1u);
  EXPECT_EQ((*agents)[0].batches_rejected(), 1u);
  EXPECT_EQ((*agents)[0].high_water_sequence(), 2u);
}

// The pipeline as ingest runs it: one thread prepares groups (each with a resend of the
// group before), another writes them, a third reads meanwhile. The log is the batches sent,
// once each, in order, and readers never see a sequence twice or out of order.
TEST(FlowStore, PipelinedGroupsStoreEachBatchOnceInOrder) {
  testing::TempDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  constexpr uint64_t kGroups = 60;
  struct Prepared {
    std::vector<AppendItem> items;
    std::unique_ptr<PreparedBatch> batch;
  };
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<Prepared> queue;
  bool done = false;
  std::vector<std::string> commit_errors;
  std::thread committer([&] {
    while (true) {
      Prepared next;
      {
        std::unique_lock lock(mutex);
        ready.wait(lock, [&] { return done || !queue.empty(); });
        if (queue.empty()) return;
        next = std::move(queue.front());
        queue.pop_front();
      }
      ready.notify_all();
      Status written = store->CommitBatch(std::move(next.batch), next.items);
      if (!written.ok()) commit_errors.push_back(written.message());
    }
  });
  std::atomic<bool> reading{true};
  std::vector<std::string> reader_errors;
  std::thread reader([&] {
    uint64_t seen = 0;
    while (reading.load()) {
      std::vector<v1::StoredEvent> events;
      if (!store->ReadEvents(seen, 1000, &events).ok()) reader_errors.push_back("read failed");
      for (const v1::StoredEvent& event : events) {
        if (event.gateway_sequence() != seen + 1) {
          reader_errors.push_back("sequence " + std::to_string(event.gateway_sequence()) +
                                  " after " + std::to_string(seen));
        }
        seen = event.gateway_sequence();
      }
      if (!store->ListAgents().ok()) reader_errors.push_back("agents failed");
    }
  });
  for (uint64_t g = 1; g <= kGroups; ++g) {
    Prepared prepared;
    prepared.items.resize(3);
    prepared.items[0].envelope = MakeBatch("boot-1", g, "a" + std::to_string(g), g);
    prepared.items[1].envelope = MakeBatch("boot-2", g, "b" + std::to_string(g), g);
    // The group before's batch again, as an agent resends after a lost acknowledgement.
    prepared.items[2].envelope = MakeBatch("boot-1", g > 1 ? g - 1 : 1, "a", 1);
    for (AppendItem& item : prepared.items) item.received_at_ms = 7;
    prepared.batch = store->PrepareBatch(prepared.items, false);
    std::unique_lock lock(mutex);
    ready.wait(lock, [&] { return queue.size() < 2; });
    queue.push_back(std::move(prepared));
    ready.notify_all();
  }
  {
    std::lock_guard lock(mutex);
    done = true;
  }
  ready.notify_all();
  committer.join();
  reading = false;
  reader.join();
  EXPECT_TRUE(commit_errors.empty()) << commit_errors.front();
  EXPECT_TRUE(reader_errors.empty()) << reader_errors.front();

  EXPECT_EQ(store->last_sequence(), kGroups * 2 * 2);  // two batches of two events a group
  std::vector<v1::StoredEvent> log;
  ASSERT_TRUE(store->ReadEvents(0, 10'000, &log).ok());
  ASSERT_EQ(log.size(), kGroups * 2 * 2);
  std::set<std::string> digests;
  for (size_t i = 0; i < log.size(); ++i) {
    EXPECT_EQ(log[i].gateway_sequence(), i + 1);
    if (log[i].event().has_flow()) digests.insert(log[i].event().flow().flow().digest());
  }
  EXPECT_EQ(digests.size(), kGroups * 2) << "each batch's flow once";
  auto agents = store->ListAgents();
  ASSERT_TRUE(agents.ok());
  ASSERT_EQ(agents->size(), 1u);
  EXPECT_EQ((*agents)[0].batches_applied(), kGroups * 2);
  EXPECT_EQ((*agents)[0].batches_duplicate(), kGroups);
}

// A prepared group that is never written (a failed write, or dropped) takes down the group
// prepared on top of it: nothing of either is applied, and their resends are applied as
// new, continuing the log from what was written.
TEST(FlowStore, GroupPreparedOnAnUnwrittenGroupIsNotWritten) {
  testing::TempDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  ASSERT_TRUE(store->Append(MakeBatch("boot-1", 1, "d1", 100), 7, nullptr).ok());
  std::vector<AppendItem> lost(1), built_on_it(1);
  lost[0].envelope = MakeBatch("boot-1", 2, "d2", 200);
  built_on_it[0].envelope = MakeBatch("boot-1", 3, "d3", 300);
  std::unique_ptr<PreparedBatch> lost_prepared = store->PrepareBatch(lost, false);
  std::unique_ptr<PreparedBatch> built_prepared = store->PrepareBatch(built_on_it, false);
  ASSERT_TRUE(built_on_it[0].result.ok()) << "judged as if batch 2 were written";
  lost_prepared.reset();  // never written

  Status written = store->CommitBatch(std::move(built_prepared), built_on_it);
  ASSERT_FALSE(written.ok());
  EXPECT_EQ(written.code(), StatusCode::kUnavailable) << written.message();
  ASSERT_FALSE(built_on_it[0].result.ok());
  EXPECT_EQ(store->last_sequence(), 2u);
  auto d3 = store->GetFlow("agent-1", "d3");
  ASSERT_TRUE(d3.ok());
  EXPECT_FALSE(d3->has_value());

  std::vector<AppendItem> resent(2);
  resent[0].envelope = MakeBatch("boot-1", 2, "d2", 200);
  resent[1].envelope = MakeBatch("boot-1", 3, "d3", 300);
  ASSERT_TRUE(store->AppendBatch(resent, true).ok());
  for (const AppendItem& item : resent) {
    ASSERT_TRUE(item.result.ok());
    EXPECT_EQ(item.result->outcome, AppendOutcome::kApplied);
  }
  ASSERT_EQ(resent[0].stored.size(), 2u);
  EXPECT_EQ(resent[0].stored[0].gateway_sequence(), 3u)
      << "the log continues from what was written";
  EXPECT_EQ(store->last_sequence(), 6u);
  auto agents = store->ListAgents();
  ASSERT_TRUE(agents.ok());
  ASSERT_EQ(agents->size(), 1u);
  EXPECT_EQ((*agents)[0].batches_applied(), 3u);
  EXPECT_EQ((*agents)[0].high_water_sequence(), 3u);
}

// A flow reporting in the same minute again is indexed once, yet "flows active since t"
// stays exact, also when retention deleted the index entries the store remembered writing.
TEST(FlowStore, ActiveFlowsStayExactWithTheIndexWrittenOncePerMinute) {
  constexpr uint64_t kMinute = 60'000;
  auto flow_at = [](uint64_t sequence, const std::string& digest, uint64_t at_ms) {
    v1::Envelope envelope = MakeBatch("boot-1", sequence, digest, 1);
    envelope.mutable_events()->RemoveLast();  // the flow event only, no purge
    auto* flow = envelope.mutable_events(0)->mutable_flow()->mutable_flow();
    flow->set_first_seen_at(at_ms);
    flow->set_last_seen_at(at_ms);
    return envelope;
  };
  auto active_since = [](FlowStore& store, uint64_t from_ms) {
    std::vector<std::string> digests;
    EXPECT_TRUE(store
                    .ScanActiveFlows(from_ms, 0,
                                     [&](const v1::FlowRecord& flow) {
                                       digests.push_back(flow.counters().digest());
                                       return true;
                                     })
                    .ok());
    std::sort(digests.begin(), digests.end());
    return digests;
  };
  testing::TempDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  ASSERT_TRUE(store->Append(flow_at(1, "x", 5 * kMinute + 10), 1, nullptr).ok());
  ASSERT_TRUE(store->Append(flow_at(2, "x", 5 * kMinute + 20), 1, nullptr).ok());
  ASSERT_TRUE(store->Append(flow_at(3, "y", 1 * kMinute), 1, nullptr).ok());
  EXPECT_EQ(active_since(*store, 5 * kMinute + 15), std::vector<std::string>{"x"});

  // Retention drops x (and y) with their index entries; x then reports late, in the same
  // minute as before: it must be indexed again to be found.
  auto dropped = store->DropBefore(6 * kMinute);
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(dropped->flows, 2u);
  ASSERT_TRUE(store->Append(flow_at(4, "z", 8 * kMinute), 1, nullptr).ok());
  ASSERT_TRUE(store->Append(flow_at(5, "x", 5 * kMinute + 40), 1, nullptr).ok());
  EXPECT_EQ(active_since(*store, 5 * kMinute + 30), (std::vector<std::string>{"x", "z"}));
  EXPECT_EQ(active_since(*store, 7 * kMinute), std::vector<std::string>{"z"});
}

// Stores written before the time index grouped its entries (one entry per flow and minute:
// minute, agent id '\0' digest -> "") answer time ranges and retention as before.
TEST(FlowStore, ReadsTheTimeIndexOfStoresWrittenBeforeItWasGrouped) {
  constexpr uint64_t kMinute = 60'000;
  testing::TempDir dir;
  OpenOrDie(dir.Sub("db"));  // makes the store's column families, empty
  {
    // Two flows and their index entries as the earlier format wrote them.
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    for (const char* name :
         {"default", "events", "flows", "agents", "marks", "activity", "rollups"}) {
      families.emplace_back(name, rocksdb::ColumnFamilyOptions());
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(
        rocksdb::DB::Open(rocksdb::DBOptions(), dir.Sub("db"), families, &handles, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::WriteBatch batch;
    for (const auto& [digest, last_ms] :
         {std::pair<std::string, uint64_t>{"x", 5 * kMinute + 10}, {"y", 1 * kMinute}}) {
      v1::FlowRecord flow;
      flow.mutable_agent()->set_id("agent-1");
      flow.mutable_metadata()->set_digest(digest);
      flow.mutable_metadata()->set_first_seen_at(last_ms);
      flow.mutable_metadata()->set_last_seen_at(last_ms);
      flow.mutable_counters()->set_digest(digest);
      flow.mutable_counters()->set_last_seen_at(last_ms);
      const std::string flow_key = std::string("agent-1", 7) + '\0' + digest;
      ASSERT_TRUE(batch.Put(handles[2], flow_key, flow.SerializeAsString()).ok());
      std::string index_key(8, '\0');
      const uint64_t minute = last_ms / kMinute * kMinute;
      for (int i = 0; i < 8; ++i) {
        index_key[static_cast<size_t>(7 - i)] = static_cast<char>(minute >> (8 * i));
      }
      ASSERT_TRUE(batch.Put(handles[5], index_key + flow_key, "").ok());
    }
    ASSERT_TRUE(db->Write(rocksdb::WriteOptions(), &batch).ok());
    for (rocksdb::ColumnFamilyHandle* handle : handles) {
      ASSERT_TRUE(db->DestroyColumnFamilyHandle(handle).ok());
    }
    ASSERT_TRUE(db->Close().ok());
  }
  auto store = OpenOrDie(dir.Sub("db"));
  std::vector<std::string> active;
  ASSERT_TRUE(store
                  ->ScanActiveFlows(5 * kMinute, 0,
                                    [&](const v1::FlowRecord& flow) {
                                      active.push_back(flow.counters().digest());
                                      return true;
                                    })
                  .ok());
  EXPECT_EQ(active, std::vector<std::string>{"x"});
  auto dropped = store->DropBefore(6 * kMinute);
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(dropped->flows, 2u);
}

}  // namespace
}  // namespace flowgate::storage
