// The agent's flow table and worker: one flow for both directions, purge reasons, eviction,
// events' content, and the worker's queue-to-table path. Real nDPI, real decoder.
#include "core/flow_table.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "capture/packet_decoder.h"
#include "capture/packet_source.h"
#include "classify/ndpi_classifier.h"
#include "core/local_networks.h"
#include "core/worker.h"
#include "export/event_sink.h"
#include "flowgate/common/envelope_codec.h"

namespace flowgate::agent {
namespace {

constexpr int kEthernet = 1;  // DLT_EN10MB
constexpr uint8_t kFin = 0x01, kSyn = 0x02, kPsh = 0x08, kAck = 0x10;
constexpr uint64_t kStartUs = 1'700'000'000'000'000ULL;

using Bytes = std::vector<uint8_t>;
using Ip = std::array<uint8_t, 4>;

struct Endpoint {
  Ip ip;
  uint16_t port = 0;
  uint8_t mac_last = 0;  // MAC 02:00:00:00:00:<mac_last>
};

// An Ethernet/IPv4 frame from `from` to `to`: UDP, or TCP with `tcp_flags`, `seq` and `ack`
// when `tcp`.
Bytes Frame(const Endpoint& from, const Endpoint& to, bool tcp, uint8_t tcp_flags,
            const Bytes& payload, uint32_t seq = 1, uint32_t ack = 0) {
  Bytes f = {0x02, 0, 0, 0, 0, to.mac_last, 0x02, 0, 0, 0, 0, from.mac_last, 0x08, 0x00};
  const size_t l4_header = tcp ? 20 : 8;
  const size_t total = 20 + l4_header + payload.size();
  const Bytes ip = {0x45,
                    0,
                    static_cast<uint8_t>(total >> 8),
                    static_cast<uint8_t>(total),
                    0,
                    1,
                    0,
                    0,
                    64,
                    static_cast<uint8_t>(tcp ? IPPROTO_TCP : IPPROTO_UDP),
                    0,
                    0,
                    from.ip[0],
                    from.ip[1],
                    from.ip[2],
                    from.ip[3],
                    to.ip[0],
                    to.ip[1],
                    to.ip[2],
                    to.ip[3]};
  f.insert(f.end(), ip.begin(), ip.end());
  const Bytes ports = {static_cast<uint8_t>(from.port >> 8), static_cast<uint8_t>(from.port),
                       static_cast<uint8_t>(to.port >> 8), static_cast<uint8_t>(to.port)};
  f.insert(f.end(), ports.begin(), ports.end());
  if (tcp) {
    for (uint32_t word : {seq, ack}) {
      for (int shift = 24; shift >= 0; shift -= 8) f.push_back(static_cast<uint8_t>(word >> shift));
    }
    const Bytes rest = {0x50, tcp_flags, 0xff, 0xff, 0, 0, 0, 0};
    f.insert(f.end(), rest.begin(), rest.end());
  } else {
    const size_t udp_length = 8 + payload.size();
    const Bytes rest = {static_cast<uint8_t>(udp_length >> 8), static_cast<uint8_t>(udp_length), 0,
                        0};
    f.insert(f.end(), rest.begin(), rest.end());
  }
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

capture::DecodedPacket Decode(const Bytes& frame) {
  capture::DecodedPacket packet;
  const capture::DecodeError error =
      capture::DecodePacket(kEthernet, frame.data(), frame.size(), nullptr, &packet);
  EXPECT_EQ(error, capture::DecodeError::kNone) << capture::DecodeErrorName(error);
  return packet;
}

// Hands `frame` to `worker` as a capture thread does: decoded, with its flow worked out.
bool PushFrame(Worker& worker, const Bytes& frame, uint64_t time_us, uint8_t interface_index) {
  const capture::DecodedPacket packet = Decode(frame);
  QueuedPacket item;
  item.Assign(packet, PacketFlow::Of(packet, 0), time_us, static_cast<uint32_t>(frame.size()),
              interface_index);
  return worker.queue().Push(&item, /*block=*/true);
}

// Feeds every packet of a reference capture to `table`, then ends its flows (terminated).
void FeedReferenceCapture(const std::string& name, FlowTable& table) {
  auto source = capture::OpenCaptureFile(std::string(FLOWGATE_TESTDATA) + "/ndpi-4.2/pcap/" + name);
  ASSERT_TRUE(source.ok()) << source.status().message();
  capture::RawPacket raw;
  capture::DecodedPacket decoded;
  while (true) {
    Result<bool> more = (*source)->Next(&raw);
    ASSERT_TRUE(more.ok()) << name << ": " << more.status().message();
    if (!*more) break;
    if (capture::DecodePacket((*source)->link_type(), raw.data, raw.captured_length, nullptr,
                              &decoded) == capture::DecodeError::kNone) {
      table.OnPacket(decoded, raw.timestamp_us, raw.wire_length);
    }
  }
  table.PurgeAll(v1::PURGE_REASON_TERMINATED);
}

// Keeps a copy of every event. Thread-safe, so that workers may emit into it.
class RecordingSink final : public EventSink {
 public:
  void Emit(const v1::Event& event) override {
    std::lock_guard lock(mutex_);
    events_.push_back(event);
  }
  Status Flush(uint64_t) override { return Status::Ok(); }

  std::vector<v1::Event> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }
  std::vector<v1::FlowPurgeEvent> Purges() const {
    std::vector<v1::FlowPurgeEvent> out;
    for (const v1::Event& e : events())
      if (e.has_flow_purge()) out.push_back(e.flow_purge());
    return out;
  }
  std::vector<v1::FlowEvent> Flows() const {
    std::vector<v1::FlowEvent> out;
    for (const v1::Event& e : events())
      if (e.has_flow()) out.push_back(e.flow());
    return out;
  }
  std::vector<v1::FlowStatsEvent> Stats() const {
    std::vector<v1::FlowStatsEvent> out;
    for (const v1::Event& e : events())
      if (e.has_flow_stats()) out.push_back(e.flow_stats());
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<v1::Event> events_;
};

std::unique_ptr<classify::NdpiModule> Ndpi() {
  auto module = classify::NdpiModule::Create({});
  EXPECT_TRUE(module.ok()) << module.status().message();
  return std::move(module).value();
}

FlowTableOptions Options() {
  FlowTableOptions options;
  options.agent_id = "unit";
  options.interfaces = {{"eth-test", true}};
  options.idle_timeout_ms = 30'000;
  options.tcp_idle_timeout_ms = 300'000;
  options.max_flows = 1000;
  return options;
}

const Endpoint kClient{{192, 168, 1, 10}, 40000, 0x10};
const Endpoint kServer{{198, 51, 100, 7}, 5555, 0x20};
const Bytes kPayload = {'n', 'o', 't', ' ', 'a', ' ', 'k', 'n', 'o', 'w', 'n', ' ', 'p', 'r', 'o'};

class FlowTableTest : public ::testing::Test {
 protected:
  void Send(const Endpoint& from, const Endpoint& to, uint64_t at_ms, bool tcp = false,
            uint8_t flags = 0, const Bytes& payload = kPayload) {
    const Bytes frame = Frame(from, to, tcp, flags, payload);
    table_->OnPacket(Decode(frame), kStartUs + at_ms * 1000, static_cast<uint32_t>(frame.size()));
  }
  void Make(FlowTableOptions options = Options()) {
    table_ = std::make_unique<FlowTable>(options, local_, *ndpi_, sink_);
  }

  std::unique_ptr<classify::NdpiModule> ndpi_ = Ndpi();
  LocalNetworks local_;
  RecordingSink sink_;
  std::unique_ptr<FlowTable> table_;
};

TEST_F(FlowTableTest, BothDirectionsAreOneFlowCountedPerDirection) {
  Make();
  Send(kClient, kServer, 0);
  Send(kServer, kClient, 1);
  Send(kClient, kServer, 2);
  EXPECT_EQ(table_->size(), 1u);
  EXPECT_EQ(table_->stats().created(), 1u);
  table_->PurgeAll(v1::PURGE_REASON_TERMINATED);

  const auto purges = sink_.Purges();
  ASSERT_EQ(purges.size(), 1u);
  const v1::FlowCounters& c = purges[0].flow();
  EXPECT_EQ(c.local_packets(), 2u);  // the private address is the local side
  EXPECT_EQ(c.other_packets(), 1u);
  EXPECT_EQ(c.total_packets(), 3u);
  EXPECT_EQ(purges[0].reason(), v1::PURGE_REASON_TERMINATED);
  EXPECT_EQ(purges[0].context().interface(), "eth-test");
  EXPECT_EQ(table_->size(), 0u);
  EXPECT_EQ(table_->stats().purged(), 1u);
}

TEST_F(FlowTableTest, FlowEventNamesBothEndsAndPrecedesItsPurgeWithTheSameDigest) {
  Make();
  Send(kClient, kServer, 0);
  Send(kServer, kClient, 5);
  table_->PurgeAll(v1::PURGE_REASON_TERMINATED);

  const std::vector<v1::Event> events = sink_.events();
  ASSERT_EQ(events.size(), 2u);
  ASSERT_TRUE(events[0].has_flow()) << "the flow event comes before the purge";
  ASSERT_TRUE(events[1].has_flow_purge());
  const v1::FlowMetadata& m = events[0].flow().flow();
  EXPECT_EQ(m.local_ip(), "192.168.1.10");
  EXPECT_EQ(m.other_ip(), "198.51.100.7");
  EXPECT_EQ(m.local_port(), 40000u);
  EXPECT_EQ(m.other_port(), 5555u);
  EXPECT_EQ(m.local_mac(), "02:00:00:00:00:10");
  EXPECT_EQ(m.other_mac(), "02:00:00:00:00:20");
  EXPECT_EQ(m.ip_protocol(), static_cast<uint32_t>(IPPROTO_UDP));
  EXPECT_TRUE(m.local_origin());
  EXPECT_EQ(m.first_seen_at(), kStartUs / 1000);
  EXPECT_EQ(m.last_seen_at(), kStartUs / 1000 + 5);
  EXPECT_TRUE(m.detection_guessed()) << "no payload nDPI knows: a guess at the end";
  EXPECT_EQ(m.digest().size(), 40u);
  EXPECT_EQ(m.digest().find_first_not_of("0123456789abcdef"), std::string::npos) << m.digest();
  EXPECT_EQ(events[1].flow_purge().flow().digest(), m.digest());
}

// A DNS message for www.example.com, type A: a query, or a response with `rcode` and
// `answers` (0 or 1) address records.
Bytes Dns(bool response, uint8_t rcode = 0, uint8_t answers = 0) {
  Bytes dns = {0x12,
               0x34,
               static_cast<uint8_t>(response ? 0x81 : 0x01),
               static_cast<uint8_t>(response ? 0x80 | rcode : 0x00),
               0,
               1,
               0,
               answers,
               0,
               0,
               0,
               0,
               3,
               'w',
               'w',
               'w',
               7,
               'e',
               'x',
               'a',
               'm',
               'p',
               'l',
               'e',
               3,
               'c',
               'o',
               'm',
               0,
               0,
               1,
               0,
               1};
  if (answers > 0) {
    const Bytes record = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1};
    dns.insert(dns.end(), record.begin(), record.end());
  }
  return dns;
}

const Endpoint kDnsClient{{192, 168, 1, 10}, 40001, 0x10};
const Endpoint kResolver{{198, 51, 100, 53}, 53, 0x20};

// The `flow` event comes at nDPI's first answer; a second one (detection_updated) only if
// nDPI's final answer says something else. A query alone is answered but never finished
// by nDPI (it waits for the response): the table ends it with no second event.
TEST_F(FlowTableTest, AnsweredFlowEndedUnfinishedHasOneFlowEvent) {
  Make();
  Send(kDnsClient, kResolver, 0, false, 0, Dns(false));
  table_->PurgeAll(v1::PURGE_REASON_TERMINATED);
  const std::vector<v1::FlowEvent> flows = sink_.Flows();
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(flows[0].flow().detected_protocol_name(), "DNS");
  EXPECT_FALSE(flows[0].flow().detection_updated());
  EXPECT_EQ(flows[0].flow().dns().query(), "www.example.com");
  ASSERT_EQ(sink_.Purges().size(), 1u);
}

// A name error changes the reply code after the first answer: the refinement comes, at
// the flow's end here (nDPI still waits for an address record).
TEST_F(FlowTableTest, ChangedAnswerIsSentAgainAsUpdated) {
  Make();
  Send(kDnsClient, kResolver, 0, false, 0, Dns(false));
  Send(kResolver, kDnsClient, 3, false, 0, Dns(true, /*rcode=*/3));
  table_->PurgeAll(v1::PURGE_REASON_TERMINATED);
  const std::vector<v1::FlowEvent> flows = sink_.Flows();
  ASSERT_EQ(flows.size(), 2u);
  EXPECT_FALSE(flows[0].flow().detection_updated());
  EXPECT_EQ(flows[0].flow().dns().reply_code(), 0u);
  EXPECT_TRUE(flows[1].flow().detection_updated());
  EXPECT_EQ(flows[1].flow().dns().reply_code(), 3u);
  EXPECT_EQ(flows[1].flow().digest(), flows[0].flow().digest());
}

// Every TLS field of a `flow` event, over a real capture, against what nDPI's own reader
// printed for it (../shared/testdata/ndpi-4.2/result/443-git.pcap.out): the values are
// copied and formatted from nDPI's state by hand (no snprintf, no temporary strings).
TEST_F(FlowTableTest, TlsFieldsOfARealFlowAreNdpiReadersOnes) {
  Make();
  FeedReferenceCapture("443-git.pcap", *table_);
  const std::vector<v1::FlowEvent> flows = sink_.Flows();
  ASSERT_FALSE(flows.empty());
  const v1::FlowMetadata& last = flows.back().flow();  // the final answer
  EXPECT_EQ(last.detected_protocol_name(), "TLS");
  EXPECT_EQ(last.detected_application_name(), "Github");
  EXPECT_EQ(last.detection_confidence(), "DPI");
  EXPECT_EQ(last.host_server_name(), "github.com");
  const v1::SslInfo& ssl = last.ssl();
  EXPECT_EQ(ssl.version(), "0x0303");       // TLSv1.2
  EXPECT_EQ(ssl.cipher_suite(), "0xc02f");  // TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
  EXPECT_EQ(ssl.client_sni(), "github.com");
  EXPECT_EQ(ssl.client_ja3(), "2a26b1a62e40d25d4de3babc9d532f30");
  EXPECT_EQ(ssl.server_ja3(), "ae53107a2e47ea20c72ac44821a728bf");
  EXPECT_EQ(ssl.issuer_dn(),
            "C=US, O=DigiCert Inc, OU=www.digicert.com, CN=DigiCert SHA2 Extended Validation "
            "Server CA");
  EXPECT_EQ(ssl.subject_dn(),
            "C=US, ST=California, L=San Francisco, O=GitHub, Inc., CN=github.com");
  EXPECT_EQ(ssl.server_cn(), "github.com");
  EXPECT_EQ(ssl.fingerprint(), "ca06f56b258b7a0d4f2b05470939478651151984");
  EXPECT_EQ(ssl.alpn(), "http/1.1");
}

// Events are built in messages reused from flow to flow (clearing and re-making them showed
// in the worker's profile): nothing a flow set may linger into a later flow's events. The
// captures cover TLS with every ssl field, HTTP over IPv6, SSH, BitTorrent, DNS and flows
// nDPI can only guess (a SYN scan).
TEST(FlowTableReuseTest, EventsCarryNothingOverFromEarlierFlows) {
  const std::vector<std::string> captures = {
      "443-git.pcap",    "http_ipv6.pcap",           "ssh.pcap",
      "bittorrent.pcap", "dns_ambiguous_names.pcap", "synscan.pcap"};
  LocalNetworks local;
  RecordingSink one_after_another;
  {
    auto ndpi = Ndpi();
    FlowTable table(Options(), local, *ndpi, one_after_another);
    for (const std::string& name : captures) FeedReferenceCapture(name, table);
  }
  std::vector<v1::Event> each_alone;
  for (const std::string& name : captures) {
    RecordingSink sink;
    auto ndpi = Ndpi();
    FlowTable table(Options(), local, *ndpi, sink);
    FeedReferenceCapture(name, table);
    const std::vector<v1::Event> events = sink.events();
    each_alone.insert(each_alone.end(), events.begin(), events.end());
  }
  const std::vector<v1::Event> reused = one_after_another.events();
  ASSERT_EQ(reused.size(), each_alone.size());
  size_t flows = 0;
  for (size_t i = 0; i < reused.size(); ++i) {
    flows += reused[i].has_flow();
    ASSERT_EQ(reused[i].DebugString(), each_alone[i].DebugString()) << "event " << i;
  }
  EXPECT_GT(flows, 100u) << "the captures hold hundreds of flows";
}

TEST_F(FlowTableTest, DigestDependsOnAgentInterfaceAndFlowOnly) {
  auto digest_of = [&](const std::string& agent_id, const Endpoint& client,
                       uint8_t interface_index) {
    RecordingSink sink;
    FlowTableOptions options = Options();
    options.agent_id = agent_id;
    options.interfaces = {{"eth-test", true}, {"eth-other", false}};
    FlowTable table(options, local_, *ndpi_, sink);
    const Bytes frame = Frame(client, kServer, false, 0, kPayload);
    table.OnPacket(Decode(frame), kStartUs, static_cast<uint32_t>(frame.size()), interface_index);
    table.PurgeAll(v1::PURGE_REASON_TERMINATED);
    return sink.Purges().at(0).flow().digest();
  };
  // SHA-1 of "a\0eth-test\0" padded with zeros to 64 bytes, then version, protocol, VLAN
  // and the ordered ports and addresses (computed apart, with Python's hashlib). Pinned: a
  // change splits the history of every flow alive across the agent's upgrade.
  EXPECT_EQ(digest_of("a", kClient, 0), "d1f19f485ff0005c5a8a458bb759c37ab007eba1");
  EXPECT_EQ(digest_of("a", kClient, 1), "93e4fdf593e82b7acadccc5498887687a770fc97");
  EXPECT_NE(digest_of("a", kClient, 0), digest_of("b", kClient, 0));
  Endpoint other_port = kClient;
  other_port.port = 40001;
  EXPECT_NE(digest_of("a", kClient, 0), digest_of("a", other_port, 0));
}

// Text nDPI copies out of packets (URL, user agent, host names, certificate fields, ...) is
// whatever bytes the packet held. Events are proto3, whose strings must be UTF-8: one
// invalid byte made the gateway refuse the agent's whole batch (up to 512 events of other
// flows) as malformed. Such bytes become U+FFFD, as the JSON stream shows them.
TEST_F(FlowTableTest, TextFromPacketsIsValidUtf8SoBatchesStayDeliverable) {
  Make();
  const std::string request =
      "GET /caf\xe9?q=\xff\xfe HTTP/1.1\r\nHost: www.ex\xe4mple.com\r\n"
      "User-Agent: agent\x80\xc0/1.0\r\nAccept: */*\r\n\r\n";
  const Endpoint server{{198, 51, 100, 80}, 80, 0x20};
  // nDPI dissects a TCP payload only in sequence after the handshake.
  auto send = [&](const Endpoint& from, const Endpoint& to, uint8_t flags, uint32_t seq,
                  uint32_t ack, const std::string& payload) {
    const Bytes frame =
        Frame(from, to, /*tcp=*/true, flags, Bytes(payload.begin(), payload.end()), seq, ack);
    table_->OnPacket(Decode(frame), kStartUs, static_cast<uint32_t>(frame.size()));
  };
  send(kClient, server, kSyn, 100, 0, "");
  send(server, kClient, kSyn | kAck, 500, 101, "");
  send(kClient, server, kAck, 101, 501, "");
  send(kClient, server, kAck | kPsh, 101, 501, request);
  table_->PurgeAll(v1::PURGE_REASON_TERMINATED);

  const std::vector<v1::FlowEvent> flows = sink_.Flows();
  ASSERT_FALSE(flows.empty());
  const v1::FlowMetadata& m = flows.back().flow();
  ASSERT_EQ(m.detected_protocol_name(), "HTTP") << "the request must reach nDPI's HTTP dissector";
  EXPECT_EQ(m.http().url(), "www.ex\uFFFDmple.com/caf\uFFFD?q=\uFFFD\uFFFD");
  EXPECT_EQ(m.http().user_agent(), "agent\uFFFD\uFFFD/1.0");
  EXPECT_EQ(m.host_server_name(), "www.ex\uFFFDmple.com");

  // What the gateway does with the agent's batch: it parses, nothing refused.
  v1::Envelope batch;
  batch.set_version(v1::PROTOCOL_VERSION_1);
  batch.mutable_agent()->set_id("agent");
  batch.mutable_agent()->set_boot_id("boot");
  batch.set_sequence(1);
  std::string frame;
  ASSERT_TRUE(batch.SerializeToString(&frame));
  for (const v1::Event& event : sink_.events()) AppendEnvelopeEventField(event, &frame);
  v1::Envelope decoded;
  const DecodeResult result = DecodeEnvelope(frame, 1 << 20, &decoded);
  EXPECT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(decoded.events_size(), static_cast<int>(sink_.events().size()));
}

TEST(NdpiModuleTest, RefusesProtocolNamesThatAreNotUtf8) {
  const std::string path = ::testing::TempDir() + "/flowgate-protos-latin1.txt";
  {
    std::ofstream file(path, std::ios::binary);
    file << "tcp:4242@Caf\xe9\n";
  }
  classify::ClassifierOptions options;
  options.protos_file = path;
  auto module = classify::NdpiModule::Create(options);
  std::remove(path.c_str());
  ASSERT_FALSE(module.ok());
  EXPECT_NE(module.status().message().find("not UTF-8: Caf\uFFFD"), std::string::npos)
      << module.status().message();
}

TEST_F(FlowTableTest, IdleFlowsArePurgedAsExpiredOrClosed) {
  FlowTableOptions options = Options();
  options.idle_timeout_ms = 1'000;
  options.tcp_idle_timeout_ms = 10'000;
  Make(options);
  const Endpoint udp_client{{192, 168, 1, 11}, 40001, 0x11};
  const Endpoint open_client{{192, 168, 1, 12}, 40002, 0x12};
  const Endpoint closed_client{{192, 168, 1, 13}, 40003, 0x13};
  Send(udp_client, kServer, 0);
  Send(open_client, kServer, 0, /*tcp=*/true, kSyn);
  Send(closed_client, kServer, 0, /*tcp=*/true, kSyn);
  Send(closed_client, kServer, 10, /*tcp=*/true, kFin | kAck);

  table_->ExpireIdle(kStartUs / 1000 + 999);
  EXPECT_EQ(table_->size(), 3u) << "nothing is idle for its timeout yet";
  table_->ExpireIdle(kStartUs / 1000 + 1'010);
  EXPECT_EQ(table_->size(), 1u) << "UDP and the closed TCP flow use the short timeout";
  table_->ExpireIdle(kStartUs / 1000 + 10'000);
  EXPECT_EQ(table_->size(), 0u) << "an open TCP flow uses the TCP timeout";

  std::map<uint32_t, v1::PurgeReason> reason_by_port;
  for (const v1::FlowPurgeEvent& purge : sink_.Purges()) {
    // Every flow is oriented with its private client local; the purge has no ports, so the
    // flow events map digests to ports.
    for (const v1::FlowEvent& flow : sink_.Flows()) {
      if (flow.flow().digest() == purge.flow().digest())
        reason_by_port[flow.flow().local_port()] = purge.reason();
    }
  }
  EXPECT_EQ(reason_by_port[40001], v1::PURGE_REASON_EXPIRED);
  EXPECT_EQ(reason_by_port[40002], v1::PURGE_REASON_EXPIRED);
  EXPECT_EQ(reason_by_port[40003], v1::PURGE_REASON_CLOSED);
  EXPECT_EQ(table_->stats().purged(), 3u);
}

TEST_F(FlowTableTest, NewFlowBeyondMaxFlowsEvictsTheLeastRecentlySeen) {
  FlowTableOptions options = Options();
  options.max_flows = 2;
  Make(options);
  Endpoint a = kClient, b = kClient, c = kClient;
  a.port = 1001, b.port = 1002, c.port = 1003;
  Send(a, kServer, 0);
  Send(b, kServer, 1);
  Send(a, kServer, 2);  // b is now the least recently seen
  Send(c, kServer, 3);

  EXPECT_EQ(table_->size(), 2u);
  EXPECT_EQ(table_->stats().evicted(), 1u);
  const auto purges = sink_.Purges();
  ASSERT_EQ(purges.size(), 1u);
  EXPECT_EQ(purges[0].reason(), v1::PURGE_REASON_EVICTED);
  EXPECT_EQ(purges[0].flow().total_packets(), 1u) << "b, seen once, went; a, seen twice, stays";
}

TEST_F(FlowTableTest, StatsCarryOnlyWhatIsNewSinceTheLastReport) {
  Make();
  Send(kClient, kServer, 0);
  Send(kServer, kClient, 1);
  table_->EmitStats();
  Send(kClient, kServer, 2);
  table_->EmitStats();
  table_->EmitStats();  // nothing new: nothing sent

  const auto stats = sink_.Stats();
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_EQ(stats[0].flow().local_packets(), 1u);
  EXPECT_EQ(stats[0].flow().other_packets(), 1u);
  EXPECT_EQ(stats[1].flow().local_packets(), 1u);
  EXPECT_EQ(stats[1].flow().other_packets(), 0u);
  EXPECT_EQ(stats[1].flow().total_packets(), 3u);
}

TEST_F(FlowTableTest, ManyFlowsComeAndGoWithoutLosingTrack) {
  // More flows than one chunk holds, half of them purged in between: every packet of a
  // live flow must still find it, and a purged flow's packets start a new one.
  FlowTableOptions options = Options();
  options.max_flows = 20'000;
  options.idle_timeout_ms = 1'000;
  Make(options);
  constexpr uint32_t kFlows = 5'000;
  auto client = [](uint32_t i) {
    return Endpoint{{10, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i), 1},
                    static_cast<uint16_t>(1024 + i % 50'000),
                    1};
  };
  // Packet time only moves forward: the even half first, the odd half later.
  for (uint32_t i = 0; i < kFlows; i += 2) Send(client(i), kServer, 0);
  for (uint32_t i = 1; i < kFlows; i += 2) Send(client(i), kServer, 5'000);
  EXPECT_EQ(table_->size(), kFlows);
  table_->ExpireIdle(kStartUs / 1000 + 2'000);  // the even half
  EXPECT_EQ(table_->size(), kFlows / 2);
  for (uint32_t i = 0; i < kFlows; ++i) Send(kServer, client(i), 5'500);
  EXPECT_EQ(table_->size(), kFlows);
  EXPECT_EQ(table_->stats().created(), kFlows + kFlows / 2);
  table_->PurgeAll(v1::PURGE_REASON_TERMINATED);

  uint64_t two_packet_flows = 0;
  for (const v1::FlowPurgeEvent& purge : sink_.Purges())
    two_packet_flows += purge.flow().total_packets() == 2;
  EXPECT_EQ(two_packet_flows, kFlows / 2) << "the odd half saw both of their packets";
  EXPECT_EQ(sink_.Purges().size(), kFlows + kFlows / 2);
}

TEST(FlowKeyTest, BothDirectionsHaveOneKeyAndHash) {
  const capture::DecodedPacket there = Decode(Frame(kClient, kServer, true, kSyn, {}));
  const capture::DecodedPacket back = Decode(Frame(kServer, kClient, true, kSyn | kAck, {}));
  bool there_lower = false, back_lower = false;
  const FlowKey a = FlowKey::Of(there, 0, &there_lower);
  const FlowKey b = FlowKey::Of(back, 0, &back_lower);
  EXPECT_EQ(a, b);
  EXPECT_NE(there_lower, back_lower);
  EXPECT_EQ(FlowKeyHash()(a), FlowKeyHash()(b));
  // The hash picks the worker: both directions meet on one worker for any worker count.
  for (size_t workers = 1; workers <= 16; ++workers)
    EXPECT_EQ(FlowKeyHash()(a) % workers, FlowKeyHash()(b) % workers);
}

TEST(WorkerTest, HandlesQueuedPacketsPerInterfaceAndPurgesAllAtTheEnd) {
  RecordingSink sink;
  LocalNetworks local;
  WorkerOptions options;
  options.table = Options();
  options.table.interfaces = {{"lan0", true}, {"wan0", false}};
  options.queue_capacity = 4;
  Worker worker(options, local, Ndpi(), sink);
  std::thread thread([&] { worker.Run(); });

  // Blocking pushes through a small queue: the worker drains it as it goes.
  for (uint8_t interface = 0; interface < 2; ++interface) {
    for (int i = 0; i < 5; ++i) {
      const Bytes frame =
          Frame(i % 2 == 0 ? kClient : kServer, i % 2 == 0 ? kServer : kClient, false, 0, kPayload);
      ASSERT_TRUE(PushFrame(worker, frame, kStartUs + static_cast<uint64_t>(i) * 1000, interface));
    }
  }
  worker.queue().Close();
  thread.join();

  const v1::FlowTableStats stats = worker.Stats();
  EXPECT_EQ(stats.created(), 2u) << "one flow per interface";
  EXPECT_EQ(stats.purged(), 2u);
  EXPECT_EQ(stats.active(), 0u);
  std::set<std::string> interfaces;
  for (const v1::FlowPurgeEvent& purge : sink.Purges()) {
    EXPECT_EQ(purge.reason(), v1::PURGE_REASON_TERMINATED);
    EXPECT_EQ(purge.flow().total_packets(), 5u);
    EXPECT_EQ(purge.flow().local_packets(), 3u);
    interfaces.insert(purge.context().interface());
  }
  EXPECT_EQ(interfaces, (std::set<std::string>{"lan0", "wan0"}));
}

TEST(WorkerTest, ExpiresIdleFlowsOnPacketTime) {
  RecordingSink sink;
  LocalNetworks local;
  WorkerOptions options;
  options.table = Options();
  options.table.idle_timeout_ms = 2'000;
  options.update_interval_ms = 1'000'000;
  Worker worker(options, local, Ndpi(), sink);
  std::thread thread([&] { worker.Run(); });
  Endpoint late = kClient;
  late.port = 40099;
  const Bytes first = Frame(kClient, kServer, false, 0, kPayload);
  const Bytes second = Frame(late, kServer, false, 0, kPayload);
  ASSERT_TRUE(PushFrame(worker, first, kStartUs, 0));
  // Ten seconds of packet time later: the first flow is idle past its timeout.
  ASSERT_TRUE(PushFrame(worker, second, kStartUs + 10'000'000, 0));
  worker.queue().Close();
  thread.join();

  const auto purges = sink.Purges();
  ASSERT_EQ(purges.size(), 2u);
  EXPECT_EQ(purges[0].reason(), v1::PURGE_REASON_EXPIRED);
  EXPECT_EQ(purges[1].reason(), v1::PURGE_REASON_TERMINATED);
}

}  // namespace
}  // namespace flowgate::agent
