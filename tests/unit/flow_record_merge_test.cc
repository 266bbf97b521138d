// How flow events fold into stored FlowRecords. Ingest folds each group's events with
// FoldFlowEvent and RocksDB's merge operator combines the groups with MergeFlowRecord; a
// flow's answer must not depend on where the groups were cut, and the key fields ingest
// strips from operands must come back whole.
#include <gtest/gtest.h>

#include <google/protobuf/util/message_differencer.h>

#include <random>
#include <string>
#include <vector>

#include "../../storage/src/flow_record_merge.h"

namespace flowgate::storage {
namespace {

constexpr char kDigest[] = "0123456789abcdef0123456789abcdef01234567";

v1::Event FlowEvent(uint64_t first_seen, uint64_t last_seen, const std::string& application) {
  v1::Event event;
  v1::FlowEvent* flow = event.mutable_flow();
  flow->mutable_context()->set_interface("eth0");
  flow->mutable_flow()->set_digest(kDigest);
  flow->mutable_flow()->set_first_seen_at(first_seen);
  flow->mutable_flow()->set_last_seen_at(last_seen);
  flow->mutable_flow()->set_detected_application_name(application);
  return event;
}

v1::Event StatsEvent(uint64_t last_seen, uint64_t local_bytes, uint64_t total_bytes) {
  v1::Event event;
  v1::FlowCounters* counters = event.mutable_flow_stats()->mutable_flow();
  counters->set_digest(kDigest);
  counters->set_last_seen_at(last_seen);
  counters->set_local_bytes(local_bytes);
  counters->set_other_bytes(local_bytes / 2);
  counters->set_local_packets(local_bytes / 100);
  counters->set_total_bytes(total_bytes);
  counters->set_total_packets(total_bytes / 100);
  return event;
}

v1::Event PurgeEvent(uint64_t last_seen, uint64_t local_bytes, uint64_t total_bytes) {
  v1::Event event = StatsEvent(last_seen, local_bytes, total_bytes);
  v1::Event purge;
  *purge.mutable_flow_purge()->mutable_flow() = event.flow_stats().flow();
  purge.mutable_flow_purge()->set_reason(v1::PURGE_REASON_CLOSED);
  return purge;
}

// A flow's life: detection, refinement, stats, purge.
std::vector<v1::Event> FlowLife() {
  return {FlowEvent(1000, 1500, "Unknown"), StatsEvent(2000, 300, 500),
          FlowEvent(1000, 2500, "YouTube"), StatsEvent(3000, 700, 1400),
          StatsEvent(4000, 100, 1600),      PurgeEvent(5000, 50, 1700)};
}

::testing::AssertionResult Same(const v1::FlowRecord& a, const v1::FlowRecord& b) {
  std::string difference;
  google::protobuf::util::MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&difference);
  if (differencer.Compare(a, b)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << difference;
}

TEST(FlowRecordMerge, GroupsCutAnywhereGiveTheSameRecord) {
  const std::vector<v1::Event> life = FlowLife();
  v1::FlowRecord whole;
  for (const v1::Event& event : life) ASSERT_TRUE(FoldFlowEvent(event, &whole));
  EXPECT_EQ(whole.metadata().detected_application_name(), "YouTube");
  EXPECT_EQ(whole.counters().local_bytes(), 300u + 700 + 100 + 50);
  EXPECT_EQ(whole.counters().total_bytes(), 1700u);
  EXPECT_EQ(whole.counters().last_seen_at(), 5000u);
  EXPECT_EQ(whole.purge_reason(), v1::PURGE_REASON_CLOSED);

  // Every way of cutting the life into consecutive groups, each folded on its own and the
  // groups then merged in order, as the merge operator sees them.
  const size_t cuts = life.size() - 1;
  for (uint32_t mask = 0; mask < (1u << cuts); ++mask) {
    std::vector<v1::FlowRecord> groups(1);
    for (size_t i = 0; i < life.size(); ++i) {
      if (i > 0 && (mask & (1u << (i - 1))) != 0) groups.emplace_back();
      ASSERT_TRUE(FoldFlowEvent(life[i], &groups.back()));
    }
    v1::FlowRecord merged = groups.front();
    for (size_t g = 1; g < groups.size(); ++g) MergeFlowRecord(groups[g], &merged);
    EXPECT_TRUE(Same(merged, whole)) << "cut mask " << mask;
  }
}

TEST(FlowRecordMerge, MergingIsAssociative) {
  const std::vector<v1::Event> life = FlowLife();
  std::vector<v1::FlowRecord> single(life.size());
  for (size_t i = 0; i < life.size(); ++i) ASSERT_TRUE(FoldFlowEvent(life[i], &single[i]));
  // ((a b) c) ... versus a (b (c ...)): RocksDB may combine operands either way.
  v1::FlowRecord left = single[0];
  for (size_t i = 1; i < single.size(); ++i) MergeFlowRecord(single[i], &left);
  v1::FlowRecord right = single.back();
  for (size_t i = single.size() - 1; i-- > 0;) {
    v1::FlowRecord older = single[i];
    MergeFlowRecord(right, &older);
    right = older;
  }
  EXPECT_TRUE(Same(left, right));
}

TEST(FlowRecordMerge, EventsAboutNoFlowAreLeftOut) {
  v1::Event status;
  status.mutable_agent_status()->set_uptime(5);
  v1::FlowRecord record;
  ASSERT_TRUE(FoldFlowEvent(StatsEvent(10, 1, 1), &record));
  const v1::FlowRecord before = record;
  EXPECT_FALSE(FoldFlowEvent(status, &record));
  EXPECT_TRUE(Same(record, before));
  EXPECT_EQ(FlowEventDigest(status), nullptr);
  ASSERT_NE(FlowEventDigest(StatsEvent(10, 1, 1)), nullptr);
  EXPECT_EQ(*FlowEventDigest(StatsEvent(10, 1, 1)), kDigest);
}

TEST(FlowRecordMerge, KeyFieldsStrippedFromOperandsComeBack) {
  v1::FlowRecord record;
  for (const v1::Event& event : FlowLife()) ASSERT_TRUE(FoldFlowEvent(event, &record));
  record.mutable_agent()->set_id("agent-7");
  record.mutable_agent()->set_name("probe-7");
  const v1::FlowRecord original = record;
  StripFlowKeyFields(&record);
  EXPECT_TRUE(record.agent().id().empty());
  EXPECT_TRUE(record.counters().digest().empty());
  EXPECT_TRUE(record.metadata().digest().empty());
  EXPECT_LT(record.ByteSizeLong(), original.ByteSizeLong());
  RestoreFlowKeyFields("agent-7", kDigest, &record);
  EXPECT_TRUE(Same(record, original));
}

}  // namespace
}  // namespace flowgate::storage
