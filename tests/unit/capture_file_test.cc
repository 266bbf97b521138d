#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "capture/packet_decoder.h"
#include "capture/packet_source.h"

namespace flowgate::capture {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

const fs::path kReferenceDir = fs::path(FLOWGATE_TESTDATA) / "ndpi-4.2" / "pcap";

void PutLe16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v));
  b.push_back(static_cast<uint8_t>(v >> 8));
}
void PutLe32(Bytes& b, uint32_t v) {
  PutLe16(b, static_cast<uint16_t>(v));
  PutLe16(b, static_cast<uint16_t>(v >> 16));
}

struct Record {
  uint32_t seconds, fraction;  // fraction in micro- or nanoseconds, as the file says
  Bytes data;
  uint32_t wire_length;
};

Bytes PcapFile(uint32_t magic, uint32_t linktype, const std::vector<Record>& records) {
  Bytes b;
  PutLe32(b, magic);
  PutLe16(b, 2);
  PutLe16(b, 4);
  PutLe32(b, 0);  // thiszone
  PutLe32(b, 0);  // sigfigs
  PutLe32(b, 65535);
  PutLe32(b, linktype);
  for (const Record& r : records) {
    PutLe32(b, r.seconds);
    PutLe32(b, r.fraction);
    PutLe32(b, static_cast<uint32_t>(r.data.size()));
    PutLe32(b, r.wire_length);
    b.insert(b.end(), r.data.begin(), r.data.end());
  }
  return b;
}

// One section, one interface with if_tsresol = 9 (nanoseconds), one enhanced packet.
Bytes NanosecondPcapng(uint64_t timestamp_ns, const Bytes& data) {
  Bytes b;
  PutLe32(b, 0x0A0D0D0A);  // section header block
  PutLe32(b, 28);
  PutLe32(b, 0x1A2B3C4D);
  PutLe16(b, 1);
  PutLe16(b, 0);
  PutLe32(b, 0xFFFFFFFF);  // section length unknown
  PutLe32(b, 0xFFFFFFFF);
  PutLe32(b, 28);
  PutLe32(b, 1);  // interface description block
  PutLe32(b, 32);
  PutLe16(b, 1);  // Ethernet
  PutLe16(b, 0);
  PutLe32(b, 65535);
  PutLe16(b, 9);  // if_tsresol
  PutLe16(b, 1);
  b.insert(b.end(), {9, 0, 0, 0});
  PutLe32(b, 0);  // opt_endofopt
  PutLe32(b, 32);
  const uint32_t padded = static_cast<uint32_t>((data.size() + 3) / 4 * 4);
  PutLe32(b, 6);  // enhanced packet block
  PutLe32(b, 32 + padded);
  PutLe32(b, 0);
  PutLe32(b, static_cast<uint32_t>(timestamp_ns >> 32));
  PutLe32(b, static_cast<uint32_t>(timestamp_ns));
  PutLe32(b, static_cast<uint32_t>(data.size()));
  PutLe32(b, static_cast<uint32_t>(data.size()));
  b.insert(b.end(), data.begin(), data.end());
  b.resize(b.size() + (padded - data.size()), 0);
  PutLe32(b, 32 + padded);
  return b;
}

constexpr uint32_t kMicroMagic = 0xA1B2C3D4;
constexpr uint32_t kNanoMagic = 0xA1B23C4D;

class CaptureFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "flowgate-capture-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    if (!dir_.empty()) fs::remove_all(dir_, ignored);
  }

  std::string Write(const std::string& name, const Bytes& content) {
    const fs::path path = dir_ / name;
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(content.data()),
              static_cast<std::streamsize>(content.size()));
    return path.string();
  }

  static void SkipWithoutReferenceData() {
    if (!fs::is_directory(kReferenceDir)) {
      GTEST_SKIP() << "reference captures not found in " << kReferenceDir;
    }
  }

  fs::path dir_;
};

TEST_F(CaptureFileTest, ReadsHandWrittenPcap) {
  const std::string path = Write(
      "two.pcap",
      PcapFile(kMicroMagic, 1, {{1700000000, 123456, {1, 2, 3}, 60}, {1700000001, 7, {4}, 1}}));
  auto source = OpenCaptureFile(path);
  ASSERT_TRUE(source.ok()) << source.status().message();
  PacketSource& s = **source;
  EXPECT_EQ(s.name(), "two.pcap");
  EXPECT_EQ(s.link_type(), 1);
  RawPacket packet;
  auto next = s.Next(&packet);
  ASSERT_TRUE(next.ok());
  ASSERT_TRUE(next.value());
  EXPECT_EQ(packet.timestamp_us, 1700000000123456u);
  EXPECT_EQ(packet.captured_length, 3u);
  EXPECT_EQ(packet.wire_length, 60u);
  EXPECT_EQ(Bytes(packet.data, packet.data + 3), (Bytes{1, 2, 3}));
  next = s.Next(&packet);
  ASSERT_TRUE(next.ok() && next.value());
  EXPECT_EQ(packet.timestamp_us, 1700000001000007u);
  EXPECT_EQ(packet.captured_length, 1u);
  EXPECT_EQ(s.counters().packets, 2u);
  EXPECT_EQ(s.counters().kernel_dropped, 0u);
  for (int i = 0; i < 2; ++i) {  // the end stays the end
    next = s.Next(&packet);
    ASSERT_TRUE(next.ok());
    EXPECT_FALSE(next.value());
  }
}

TEST_F(CaptureFileTest, NanosecondPcapIsReadInMicroseconds) {
  const std::string path =
      Write("nano.pcap", PcapFile(kNanoMagic, 101, {{1700000000, 123456789, {0x45}, 1}}));
  auto source = OpenCaptureFile(path);
  ASSERT_TRUE(source.ok()) << source.status().message();
  EXPECT_EQ((*source)->link_type(), 12);  // LINKTYPE_RAW is reported as DLT_RAW
  RawPacket packet;
  auto next = (*source)->Next(&packet);
  ASSERT_TRUE(next.ok() && next.value());
  EXPECT_EQ(packet.timestamp_us, 1700000000123456u);
}

TEST_F(CaptureFileTest, NanosecondPcapngIsReadInMicroseconds) {
  const std::string path =
      Write("nano.pcapng", NanosecondPcapng(1700000000'987654321ULL, {1, 2, 3, 4, 5}));
  auto source = OpenCaptureFile(path);
  ASSERT_TRUE(source.ok()) << source.status().message();
  EXPECT_EQ((*source)->name(), "nano.pcapng");
  RawPacket packet;
  auto next = (*source)->Next(&packet);
  ASSERT_TRUE(next.ok() && next.value());
  EXPECT_EQ(packet.timestamp_us, 1700000000987654u);
  EXPECT_EQ(packet.captured_length, 5u);
  next = (*source)->Next(&packet);
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next.value());
}

TEST_F(CaptureFileTest, MissingFile) {
  const std::string path = (dir_ / "absent.pcap").string();
  auto source = OpenCaptureFile(path);
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(source.status().message(),
            "cannot open capture '" + path + "': No such file or directory");
}

TEST_F(CaptureFileTest, Directory) {
  auto source = OpenCaptureFile(dir_.string());
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().message(),
            "cannot open capture '" + dir_.string() + "': Is a directory");
}

TEST_F(CaptureFileTest, UnreadableFile) {
  if (geteuid() == 0) GTEST_SKIP() << "root can read any file";
  const std::string path = Write("secret.pcap", PcapFile(kMicroMagic, 1, {}));
  ASSERT_EQ(chmod(path.c_str(), 0), 0);
  auto source = OpenCaptureFile(path);
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().message(), "cannot open capture '" + path + "': Permission denied");
}

TEST_F(CaptureFileTest, NotACapture) {
  const std::string text = Write("notes.txt", Bytes{'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r',
                                                    'l', 'd', '\n', 'm', 'o', 'r', 'e', '\n'});
  const std::string empty = Write("empty.pcap", {});
  for (const std::string& path : {text, empty}) {
    auto source = OpenCaptureFile(path);
    ASSERT_FALSE(source.ok());
    const std::string& message = source.status().message();
    const std::string prefix = "'" + path + "' is not a pcap or pcapng capture (";
    EXPECT_EQ(message.substr(0, prefix.size()), prefix) << message;
    EXPECT_GT(message.size(), prefix.size() + 1) << "libpcap's reason is missing: " << message;
    EXPECT_EQ(message.back(), ')');
    EXPECT_EQ(message.find('\n'), std::string::npos);
  }
}

// Reads until the end or an error; returns the packets read and the final result.
Result<bool> Drain(PacketSource& source, uint64_t* packets) {
  RawPacket packet;
  *packets = 0;
  for (;;) {
    Result<bool> next = source.Next(&packet);
    if (!next.ok() || !next.value()) return next;
    ++*packets;
  }
}

TEST_F(CaptureFileTest, TruncatedRecordIsAnError) {
  const Bytes full = PcapFile(kMicroMagic, 1, {{1, 0, Bytes(40, 1), 40}, {2, 0, Bytes(40, 2), 40}});
  // Cut inside the second record's data, then inside its 16-byte header.
  for (size_t cut : {full.size() - 10, full.size() - 40 - 8}) {
    SCOPED_TRACE(cut);
    const std::string path = Write("cut.pcap", Bytes(full.begin(), full.begin() + cut));
    auto source = OpenCaptureFile(path);
    ASSERT_TRUE(source.ok()) << source.status().message();
    uint64_t packets = 0;
    Result<bool> end = Drain(**source, &packets);
    EXPECT_EQ(packets, 1u);
    ASSERT_FALSE(end.ok());
    const std::string prefix = "capture '" + path + "' is broken after 1 packets: ";
    EXPECT_EQ(end.status().message().substr(0, prefix.size()), prefix) << end.status().message();
    EXPECT_GT(end.status().message().size(), prefix.size());
    RawPacket packet;
    EXPECT_FALSE((*source)->Next(&packet).ok());  // stays broken
  }
}

TEST_F(CaptureFileTest, TruncatedCopyOfReferenceCaptureIsAnError) {
  SkipWithoutReferenceData();
  if (IsSkipped()) return;
  std::ifstream in(kReferenceDir / "443-git.pcap", std::ios::binary);
  const Bytes full((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(full.size(), 1000u);
  const std::string path = Write("443-git.pcap", Bytes(full.begin(), full.end() - 7));
  auto source = OpenCaptureFile(path);
  ASSERT_TRUE(source.ok()) << source.status().message();
  uint64_t packets = 0;
  Result<bool> end = Drain(**source, &packets);
  ASSERT_FALSE(end.ok());
  EXPECT_EQ(packets, 69u);  // of 70
  EXPECT_EQ((*source)->counters().packets, 69u);
  EXPECT_EQ(end.status().code(), StatusCode::kCorruption);
  EXPECT_NE(end.status().message().find("is broken after 69 packets: "), std::string::npos)
      << end.status().message();
}

struct Expected {
  int link_type;
  uint64_t packets;
  uint64_t ip;      // decoded without error
  uint64_t not_ip;  // every other error kind must be absent
};

// Measured with this decoder; the IP counts equal the packet totals of nDPI's reference
// output for every capture except netflix.pcap, whose .out predates the trimming.
const std::map<std::string, Expected> kExpected = {
    {"1kxun.pcap", {1, 1439, 1439, 0}},
    {"443-chrome.pcap", {1, 1, 1, 0}},
    {"443-git.pcap", {1, 70, 70, 0}},
    {"6in4tunnel.pcap", {1, 127, 127, 0}},
    {"NTPv4.pcap", {1, 1, 1, 0}},
    {"bittorrent.pcap", {1, 299, 299, 0}},
    {"bittorrent_utp.pcap", {1, 86, 86, 0}},
    {"dns_ambiguous_names.pcap", {1, 20, 20, 0}},
    {"dns_doh.pcap", {1, 142, 142, 0}},
    {"dns_dot.pcap", {1, 24, 24, 0}},
    {"dropbox.pcap", {1, 848, 848, 0}},
    {"facebook.pcap", {1, 60, 60, 0}},
    {"google_ssl.pcap", {1, 28, 28, 0}},
    {"http_ipv6.pcap", {1, 193, 193, 0}},
    {"imap.pcap", {1, 33, 33, 0}},
    {"mqtt.pcap", {1, 9, 9, 0}},
    {"netflix.pcap", {1, 1793, 1793, 0}},
    {"ocs.pcap", {12, 946, 946, 0}},  // raw IP
    {"openvpn.pcap", {1, 298, 298, 0}},
    {"quic-27.pcap", {1, 20, 20, 0}},
    {"quic-29.pcap", {1, 15, 15, 0}},
    {"quic-mvfst-27.pcapng", {1, 20, 20, 0}},
    {"quic.pcap", {1, 518, 518, 0}},
    {"quickplay.pcap", {113, 155, 155, 0}},  // Linux SLL
    {"rdp.pcap", {0, 2010, 2010, 0}},        // BSD loopback
    {"sip.pcap", {1, 112, 112, 0}},
    {"smb_deletefile.pcap", {1, 101, 101, 0}},
    {"smtp.pcap", {1, 95, 95, 0}},
    {"ssh.pcap", {1, 258, 258, 0}},
    {"steam.pcap", {1, 104, 104, 0}},
    {"synscan.pcap", {1, 2011, 2011, 0}},
    {"whatsapp_login_chat.pcap", {1, 93, 93, 0}},
    {"whatsapp_voice_and_message.pcap", {1, 261, 261, 0}},
    {"wireguard.pcap", {1, 2399, 2399, 0}},
    {"zoom.pcap", {1, 700, 697, 3}},  // 3 non-IP frames
};

// Decodes every packet of a reference capture, calling `check` for each decoded one.
template <typename Check>
void DecodeAll(const fs::path& path, Expected* seen, Check check) {
  auto source = OpenCaptureFile(path.string());
  ASSERT_TRUE(source.ok()) << source.status().message();
  seen->link_type = (*source)->link_type();
  FragmentTracker tracker;
  RawPacket raw;
  for (;;) {
    Result<bool> next = (*source)->Next(&raw);
    ASSERT_TRUE(next.ok()) << next.status().message();
    if (!next.value()) break;
    ++seen->packets;
    ASSERT_LE(raw.captured_length, raw.wire_length);
    ASSERT_GT(raw.timestamp_us, 0u);
    DecodedPacket packet;
    const DecodeError error =
        DecodePacket(seen->link_type, raw.data, raw.captured_length, &tracker, &packet);
    if (error == DecodeError::kNone) {
      ++seen->ip;
      ASSERT_GE(packet.l3, raw.data);
      ASSERT_LE(packet.l3 + packet.l3_length, raw.data + raw.captured_length);
      check(packet);
    } else if (error == DecodeError::kNotIp) {
      ++seen->not_ip;
    } else {
      ADD_FAILURE() << path.filename() << " packet " << seen->packets << ": "
                    << DecodeErrorName(error);
    }
  }
}

TEST_F(CaptureFileTest, DecodesEveryReferenceCapture) {
  SkipWithoutReferenceData();
  if (IsSkipped()) return;
  std::set<std::string> found;
  for (const fs::directory_entry& entry : fs::directory_iterator(kReferenceDir)) {
    const std::string name = entry.path().filename().string();
    SCOPED_TRACE(name);
    found.insert(name);
    Expected seen{-1, 0, 0, 0};
    DecodeAll(entry.path(), &seen, [](const DecodedPacket& p) {
      EXPECT_TRUE(p.ip_version == 4 || p.ip_version == 6);
      EXPECT_EQ(p.src.version, p.ip_version);
    });
    const auto it = kExpected.find(name);
    ASSERT_NE(it, kExpected.end()) << "no expectation for a new capture";
    EXPECT_EQ(seen.link_type, it->second.link_type);
    EXPECT_EQ(seen.packets, it->second.packets);
    EXPECT_EQ(seen.ip, it->second.ip);
    EXPECT_EQ(seen.not_ip, it->second.not_ip);
  }
  EXPECT_EQ(found.size(), kExpected.size());
}

TEST_F(CaptureFileTest, SixInFourTunnelYieldsInnerIpv6) {
  SkipWithoutReferenceData();
  if (IsSkipped()) return;
  Expected seen{};
  uint64_t tunneled = 0, tcp_443 = 0;
  DecodeAll(kReferenceDir / "6in4tunnel.pcap", &seen, [&](const DecodedPacket& p) {
    EXPECT_EQ(p.ip_version, 6);
    tunneled += p.tunnel_depth == 1;
    if (p.ip_protocol == 6 && (p.src_port == 443 || p.dst_port == 443)) ++tcp_443;
  });
  EXPECT_EQ(tunneled, 127u);
  EXPECT_GT(tcp_443, 0u);
}

TEST_F(CaptureFileTest, MqttHasOneVlanTaggedPacket) {
  SkipWithoutReferenceData();
  if (IsSkipped()) return;
  Expected seen{};
  uint64_t tagged = 0;
  DecodeAll(kReferenceDir / "mqtt.pcap", &seen, [&](const DecodedPacket& p) {
    if (p.vlan_id == 0) return;
    ++tagged;
    EXPECT_EQ(p.vlan_id, 1008);
    EXPECT_EQ(p.src.ToString(), "100.67.35.238");
    EXPECT_EQ(p.dst_port, 1883);
  });
  EXPECT_EQ(tagged, 1u);
}

TEST_F(CaptureFileTest, ReferencePcapngOpens) {
  SkipWithoutReferenceData();
  if (IsSkipped()) return;
  auto source = OpenCaptureFile((kReferenceDir / "quic-mvfst-27.pcapng").string());
  ASSERT_TRUE(source.ok()) << source.status().message();
  EXPECT_EQ((*source)->name(), "quic-mvfst-27.pcapng");
  EXPECT_EQ((*source)->link_type(), 1);
  RawPacket raw;
  auto next = (*source)->Next(&raw);
  ASSERT_TRUE(next.ok() && next.value());
  EXPECT_EQ(raw.timestamp_us, 41432902u);  // as stored: the capture starts near the epoch
  DecodedPacket packet;
  ASSERT_EQ(DecodePacket(1, raw.data, raw.captured_length, nullptr, &packet), DecodeError::kNone);
  EXPECT_EQ(packet.ip_protocol, 17);
  EXPECT_EQ(packet.dst_port, 443);
}

}  // namespace
}  // namespace flowgate::capture
