// Bad input to the agent binary: garbage files, truncated captures, zero-length, snaplen-cut,
// jumbo and hostile frames. No crash, no hang; what cannot be decoded is counted as
// discarded and everything else keeps working.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "../support/ndpi_reference.h"
#include "../support/netifyd_stream.h"
#include "../support/pcap_file.h"
#include "../support/process.h"
#include "../support/temp_dir.h"
#include "pcap_format.h"

namespace flowgate::testing {
namespace {

using nlohmann::json;
using Bytes = std::vector<uint8_t>;

// A classic Ethernet pcap of `frames`, a second apart; `wire_lengths` default to caplen.
std::string Pcap(const std::vector<Bytes>& frames, const std::vector<uint32_t>& wire_lengths = {}) {
  std::string out = PcapFileHeader();
  for (size_t i = 0; i < frames.size(); ++i) {
    trafficgen::PcapRecordHeader record = trafficgen::PcapRecordAt(
        (1'600'000'000 + i) * 1'000'000, static_cast<uint32_t>(frames[i].size()));
    if (i < wire_lengths.size()) record.wire_length = wire_lengths[i];
    out.append(reinterpret_cast<const char*>(&record), sizeof record);
    out.append(frames[i].begin(), frames[i].end());
  }
  return out;
}

Bytes Ethernet(uint16_t ether_type, const Bytes& payload) {
  Bytes f = {2,
             0,
             0,
             0,
             0,
             1,
             2,
             0,
             0,
             0,
             0,
             2,
             static_cast<uint8_t>(ether_type >> 8),
             static_cast<uint8_t>(ether_type)};
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

// IPv4 header (20 bytes) + `l4`, protocol `protocol`, total length from the real size.
Bytes Ipv4(uint8_t protocol, const Bytes& l4, uint8_t last_octet = 1) {
  const size_t total = 20 + l4.size();
  Bytes p = {0x45,
             0,
             static_cast<uint8_t>(total >> 8),
             static_cast<uint8_t>(total),
             0,
             1,
             0,
             0,
             64,
             protocol,
             0,
             0,
             10,
             0,
             0,
             last_octet,
             192,
             0,
             2,
             1};
  p.insert(p.end(), l4.begin(), l4.end());
  return p;
}

Bytes Udp(uint16_t sport, uint16_t dport, size_t payload) {
  const size_t length = 8 + payload;
  Bytes u = {static_cast<uint8_t>(sport >> 8),
             static_cast<uint8_t>(sport),
             static_cast<uint8_t>(dport >> 8),
             static_cast<uint8_t>(dport),
             static_cast<uint8_t>(length >> 8),
             static_cast<uint8_t>(length),
             0,
             0};
  u.resize(length, 0x41);
  return u;
}

std::vector<json> RunAgentOn(const TempDir& dir, const std::string& capture, CommandResult* run) {
  const std::string out = dir.Sub("out.json");
  std::filesystem::remove(out);
  *run = RunCommand({BinaryPath("flowgate-agent"), "-r", capture, "--json-out", out},
                    std::chrono::seconds(60));
  std::ifstream in(out);
  std::stringstream bytes;
  bytes << in.rdbuf();
  std::string error;
  std::vector<json> messages = ParseNetifydStream(bytes.str(), &error);
  EXPECT_EQ(error, "");
  return messages;
}

uint64_t StatsSum(const std::vector<json>& messages, const std::string& field) {
  uint64_t sum = 0;
  for (const json& m : messages) {
    if (m.value("type", "") != "agent_status" || !m.contains("stats")) continue;
    for (const auto& [name, stats] : m["stats"].items()) sum += stats.value(field, uint64_t{0});
  }
  return sum;
}

TEST(AgentRobustness, GarbageFileIsRejectedWithAMessage) {
  TempDir dir;
  const std::string path = dir.Sub("garbage.pcap");
  std::ofstream(path) << std::string(4096, '\x5a') << "not a capture";
  CommandResult run;
  RunAgentOn(dir, path, &run);
  EXPECT_FALSE(run.timed_out);
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_NE(run.err.find("is not a pcap or pcapng capture"), std::string::npos) << run.err;
}

TEST(AgentRobustness, TruncatedCaptureKeepsWhatWasRead) {
  TempDir dir;
  const std::string reference = TestdataDir() + "/ndpi-4.2/pcap/dropbox.pcap";
  std::ifstream in(reference, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  ASSERT_GT(bytes.str().size(), 50'000u);
  const std::string path = dir.Sub("truncated.pcap");
  std::ofstream(path, std::ios::binary) << bytes.str().substr(0, bytes.str().size() / 2 + 7);
  CommandResult run;
  const std::vector<json> messages = RunAgentOn(dir, path, &run);
  EXPECT_FALSE(run.timed_out);
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.err.find("is broken after"), std::string::npos) << run.err;
  // Everything read before the cut is still reported, and the stream ends properly.
  ASSERT_FALSE(messages.empty());
  EXPECT_TRUE(messages.back().value("final", false));
  EXPECT_FALSE(FlowsByTuple(messages).empty());
}

TEST(AgentRobustness, HostileFramesAreCountedAsDiscarded) {
  TempDir dir;
  Bytes ipip = Ipv4(17, Udp(1000, 53, 16));
  for (int i = 0; i < 6; ++i) ipip = Ipv4(4, ipip);  // deeper than the decoder follows
  Bytes bad_ihl = Ipv4(17, {});
  bad_ihl[0] = 0x4f;  // a 60-byte header in a 20-byte packet
  Bytes bad_version = Ipv4(17, Udp(1, 2, 4));
  bad_version[0] = 0x75;
  Bytes short_total = Ipv4(17, Udp(1, 2, 4));
  short_total[2] = 0, short_total[3] = 10;  // total length below the header's
  Bytes tcp(20, 0);
  tcp[12] = 0x20;  // data offset 8 bytes: below the minimum
  const std::vector<Bytes> hostile = {
      {},                                 // zero-length
      Bytes(10, 0xff),                    // cut inside the Ethernet header
      Ethernet(0x0800, Bytes(10, 0x45)),  // cut inside the IPv4 header
      Ethernet(0x0800, bad_ihl),
      Ethernet(0x0800, bad_version),
      Ethernet(0x0800, short_total),
      Ethernet(0x0800, Ipv4(6, tcp)),
      Ethernet(0x0800, ipip),
  };
  std::vector<Bytes> frames = hostile;
  // Fine frames between them: a jumbo UDP datagram (65535-byte frame) and a packet cut by
  // the snap length (wire length beyond caplen) still decode and count.
  frames.push_back(Ethernet(0x0800, Ipv4(17, Udp(4000, 5000, 65535 - 14 - 20 - 8), 2)));
  frames.push_back(Ethernet(0x0800, Ipv4(17, Udp(4001, 53, 40), 3)));
  std::vector<uint32_t> wire(frames.size(), 0);
  for (size_t i = 0; i < frames.size(); ++i) wire[i] = static_cast<uint32_t>(frames[i].size());
  wire.back() = 1500;  // snaplen-cut
  const std::string path = dir.Sub("hostile.pcap");
  std::ofstream(path, std::ios::binary) << Pcap(frames, wire);

  CommandResult run;
  const std::vector<json> messages = RunAgentOn(dir, path, &run);
  EXPECT_FALSE(run.timed_out);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(StatsSum(messages, "raw"), frames.size());
  EXPECT_EQ(StatsSum(messages, "discarded"), hostile.size());
  EXPECT_EQ(FlowsByTuple(messages).size(), 2u);
}

}  // namespace
}  // namespace flowgate::testing
