// The transport's pure parts (issue 4): the envelope codec, the store's sequencing rule
// (in order, or past a gap only when the agent gave it up) and CURVE key files.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <zstd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "flowgate/common/curve_keys.h"
#include "flowgate/common/envelope_codec.h"
#include "flowgate/storage/flow_store.h"

namespace flowgate {
namespace {

struct ScratchDir {
  ScratchDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "fg-unit-XXXXXX").string();
    EXPECT_NE(::mkdtemp(pattern.data()), nullptr);
    path = pattern;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::string path;
};

v1::Envelope MakeEnvelope(uint64_t sequence, int events, uint64_t floor = 0) {
  v1::Envelope envelope;
  envelope.set_version(v1::PROTOCOL_VERSION_1);
  envelope.mutable_agent()->set_id("agent-1");
  envelope.mutable_agent()->set_boot_id("boot-1");
  envelope.mutable_agent()->set_name("probe");
  envelope.set_sequence(sequence);
  envelope.set_resend_floor(floor);
  for (int i = 0; i < events; ++i) {
    envelope.add_events()->mutable_flow_purge()->mutable_flow()->set_digest(
        "d" + std::to_string(sequence) + "-" + std::to_string(i));
  }
  return envelope;
}

// What an agent sends: a header envelope followed by each event as an `events` field.
std::string EventFields(const v1::Envelope& envelope) {
  std::string fields;
  for (const v1::Event& event : envelope.events()) AppendEnvelopeEventField(event, &fields);
  return fields;
}

TEST(EnvelopeCodecTest, HeaderAndEventFieldsParseAsOneEnvelope) {
  const v1::Envelope whole = MakeEnvelope(3, 50);
  v1::Envelope header = whole;
  header.clear_events();
  const std::string frame = header.SerializeAsString() + EventFields(whole);
  EXPECT_EQ(frame.size(), whole.ByteSizeLong());
  v1::Envelope got;
  DecodeResult result = DecodeEnvelope(frame, 1 << 20, &got);
  ASSERT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(got.SerializeAsString(), whole.SerializeAsString());
}

TEST(EnvelopeCodecTest, CompressedBatchRoundTrips) {
  const v1::Envelope whole = MakeEnvelope(3, 50);
  v1::Envelope sent = whole;
  sent.clear_events();
  ASSERT_TRUE(CompressEventFields(1, EventFields(whole), &sent));
  EXPECT_EQ(sent.compression(), v1::COMPRESSION_ZSTD);
  v1::Envelope got;
  const std::string frame = sent.SerializeAsString();
  DecodeResult result = DecodeEnvelope(frame, 1 << 20, &got);
  ASSERT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(got.events_size(), 50);
  EXPECT_EQ(got.events(49).flow_purge().flow().digest(), "d3-49");
}

// The gateway stores each event in the bytes the agent sent: DecodeEnvelope must find
// exactly the events it parsed, in order, plain or compressed.
TEST(EnvelopeCodecTest, LocatesEachEventInTheBytesSent) {
  const v1::Envelope whole = MakeEnvelope(3, 40);
  v1::Envelope compressed = whole;
  compressed.clear_events();
  ASSERT_TRUE(CompressEventFields(1, EventFields(whole), &compressed));
  for (const v1::Envelope& sent : {whole, compressed}) {
    v1::Envelope got;
    EventWire wire;
    DecodeResult result = DecodeEnvelope(sent.SerializeAsString(), 1 << 20, &got, &wire);
    ASSERT_TRUE(result.ok()) << result.error;
    ASSERT_EQ(wire.spans.size(), 40u);
    for (int i = 0; i < 40; ++i) {
      EXPECT_EQ(wire.event(static_cast<size_t>(i)), whole.events(i).SerializeAsString()) << i;
    }
  }
}

// Fields before, between and after the events (other fields, a newer agent's unknown ones,
// a tag in a longer varint than needed) move nothing: the events found are those parsed.
TEST(EnvelopeCodecTest, LocatesEventsAmongOtherFieldsAsTheParserReadsThem) {
  v1::Envelope header = MakeEnvelope(5, 0);
  v1::Event first, second;
  first.mutable_flow_purge()->mutable_flow()->set_digest("first");
  second.mutable_flow_purge()->mutable_flow()->set_digest("second");
  std::string frame = header.SerializeAsString();
  AppendEnvelopeEventField(first, &frame);
  frame += std::string("\xf8\x07\x01", 3);  // field 127, varint 1: unknown to this build
  const std::string second_bytes = second.SerializeAsString();
  // Field 4, length-delimited, as the two-byte varint 0xa2 0x00.
  frame += std::string("\xa2\x00", 2) + static_cast<char>(second_bytes.size()) + second_bytes;
  frame += std::string("\x38\x2a", 2);  // sent_at = 42, after the events
  v1::Envelope got;
  EventWire wire;
  DecodeResult result = DecodeEnvelope(frame, 1 << 20, &got, &wire);
  ASSERT_TRUE(result.ok()) << result.error;
  ASSERT_EQ(got.events_size(), 2);
  EXPECT_EQ(got.sent_at(), 42u);
  ASSERT_EQ(wire.spans.size(), 2u);
  EXPECT_EQ(wire.event(0), first.SerializeAsString());
  EXPECT_EQ(wire.event(1), second_bytes);
  // A frame that does not decode leaves no events to store.
  EXPECT_FALSE(DecodeEnvelope(frame.substr(0, frame.size() - 3), 1 << 20, &got, &wire).ok());
  EXPECT_TRUE(wire.spans.empty());
}

TEST(EnvelopeCodecTest, CompressionRefusesBytesThatAreNotEventFields) {
  const std::string fields = EventFields(MakeEnvelope(1, 3));
  v1::Envelope envelope;
  EXPECT_FALSE(CompressEventFields(1,
                                   std::string("\x0a\x02"
                                               "ab"),
                                   &envelope));  // another tag
  EXPECT_FALSE(CompressEventFields(1, fields.substr(0, fields.size() - 1), &envelope));
  EXPECT_EQ(envelope.compression(), v1::COMPRESSION_NONE);
  EXPECT_TRUE(envelope.compressed_events().empty());
}

TEST(EnvelopeCodecTest, RefusesEachKindOfBadFrameWithAReason) {
  v1::Envelope out;
  DecodeResult result;
  EXPECT_EQ(DecodeEnvelope("\xff\xff\xff", 1024, &out).reason, RejectReason::kMalformed);
  v1::Envelope future = MakeEnvelope(1, 1);
  future.set_version(static_cast<v1::ProtocolVersion>(9));
  EXPECT_EQ(DecodeEnvelope(future.SerializeAsString(), 1024, &out).reason,
            RejectReason::kUnsupportedVersion);
  EXPECT_EQ(DecodeEnvelope(std::string(2000, 'x'), 1024, &out).reason, RejectReason::kTooLarge);
  const std::string whole = MakeEnvelope(1, 3).SerializeAsString();
  EXPECT_EQ(DecodeEnvelope(whole.substr(0, whole.size() - 3), 1024, &out).reason,
            RejectReason::kMalformed);
  // A batch that does not say whose, from which boot, or where in the sequence it is cannot
  // be stored; the agent it names (if any) is still readable to count it against.
  v1::Envelope anonymous = MakeEnvelope(1, 1);
  anonymous.mutable_agent()->clear_boot_id();
  result = DecodeEnvelope(anonymous.SerializeAsString(), 1024, &out);
  EXPECT_EQ(result.reason, RejectReason::kMalformed);
  EXPECT_NE(result.error.find("boot id"), std::string::npos) << result.error;
  EXPECT_EQ(out.agent().id(), "agent-1");
  v1::Envelope unnumbered = MakeEnvelope(0, 1);
  EXPECT_EQ(DecodeEnvelope(unnumbered.SerializeAsString(), 1024, &out).reason,
            RejectReason::kMalformed);
  // A small frame that would decompress past the limit (a zstd bomb) is refused unread.
  std::string zeros(1 << 20, '\0');
  std::string packed(ZSTD_compressBound(zeros.size()), '\0');
  packed.resize(ZSTD_compress(packed.data(), packed.size(), zeros.data(), zeros.size(), 1));
  v1::Envelope bomb = MakeEnvelope(1, 0);
  bomb.set_compression(v1::COMPRESSION_ZSTD);
  bomb.set_compressed_events(packed);
  result = DecodeEnvelope(bomb.SerializeAsString(), 64 << 10, &out);
  EXPECT_EQ(result.reason, RejectReason::kTooLarge) << result.error;
  EXPECT_FALSE(result.error.empty());
}

TEST(StoreSequencingTest, AppliesInOrderOrPastAGapOnlyWhenGivenUp) {
  ScratchDir dir;
  auto store = storage::OpenRocksFlowStore({.path = dir.path + "/db"});
  ASSERT_TRUE(store.ok()) << store.status().message();
  auto append = [&](const v1::Envelope& e) {
    auto r = (*store)->Append(e, 1000, nullptr);
    EXPECT_TRUE(r.ok());
    return *r;
  };
  EXPECT_EQ(append(MakeEnvelope(1, 2)).outcome, storage::AppendOutcome::kApplied);
  // 3 arrives before 2, which the agent still holds (floor 2): not applied.
  storage::AppendResult early = append(MakeEnvelope(3, 2, 2));
  EXPECT_EQ(early.outcome, storage::AppendOutcome::kOutOfOrder);
  EXPECT_EQ(early.expected_sequence, 2u);
  EXPECT_EQ(append(MakeEnvelope(2, 2, 2)).outcome, storage::AppendOutcome::kApplied);
  EXPECT_EQ(append(MakeEnvelope(3, 2, 2)).outcome, storage::AppendOutcome::kApplied);
  EXPECT_EQ(append(MakeEnvelope(2, 2, 2)).outcome, storage::AppendOutcome::kDuplicate);
  // The agent's spool overflowed: 4 and 5 are gone, 6 is the lowest it holds.
  storage::AppendResult past_gap = append(MakeEnvelope(6, 2, 6));
  EXPECT_EQ(past_gap.outcome, storage::AppendOutcome::kApplied);
  EXPECT_EQ(past_gap.missing_before, 2u);
  EXPECT_EQ((*store)->last_sequence(), 8u) << "4 batches of 2 events, none twice";
  auto agents = (*store)->ListAgents();
  ASSERT_TRUE(agents.ok());
  ASSERT_EQ(agents->size(), 1u);
  EXPECT_EQ((*agents)[0].sequence_gaps(), 2u);
  EXPECT_EQ((*agents)[0].batches_duplicate(), 1u);
  EXPECT_EQ((*agents)[0].batches_out_of_order(), 1u);
}

TEST(CurveKeysTest, WritesOwnerOnlyFilesAndReadsThemBack) {
  if (!CurveAvailable()) GTEST_SKIP() << "libzmq without CURVE";
  ScratchDir dir;
  auto pair = MakeCurveKeyPair();
  ASSERT_TRUE(pair.ok());
  ASSERT_TRUE(WriteCurveKeyPair(dir.path, "probe", *pair).ok());
  struct stat st {};
  ASSERT_EQ(::stat((dir.path + "/probe.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto read = ReadCurveKeyPair(dir.path + "/probe.key");
  ASSERT_TRUE(read.ok()) << read.status().message();
  EXPECT_EQ(read->public_key, pair->public_key);
  EXPECT_EQ(read->secret_key, pair->secret_key);
  auto pub = ReadCurvePublicKey(dir.path + "/probe.pub");
  ASSERT_TRUE(pub.ok());
  EXPECT_EQ(*pub, pair->public_key);
  EXPECT_FALSE(WriteCurveKeyPair(dir.path, "probe", *pair).ok()) << "never overwrites";
  std::ofstream(dir.path + "/allow") << "# fleet\n" << pair->public_key << " probe-1\n\n";
  auto allowed = ReadCurveAllowList(dir.path + "/allow");
  ASSERT_TRUE(allowed.ok());
  EXPECT_EQ(allowed->at(pair->public_key), "probe-1");
  std::ofstream(dir.path + "/bad") << "not-a-key\n";
  auto bad = ReadCurveAllowList(dir.path + "/bad");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 1"), std::string::npos);
}

}  // namespace
}  // namespace flowgate
