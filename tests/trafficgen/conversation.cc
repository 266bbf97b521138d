#include "conversation.h"

#include <algorithm>
#include <array>

namespace flowgate::trafficgen {
namespace {

// Segments carry no TCP options after the handshake, so the payload limit is the MSS.
constexpr size_t kMss = 1460;
// Serialisation gap between back-to-back segments of one burst (about 100 Mbit/s).
constexpr uint32_t kSegmentGapUs = 120;
// How long a host takes to emit an ACK or the next packet it already has queued.
constexpr uint32_t kStackDelayUs = 40;

// SYN options in Linux order: MSS 1460, SACK permitted, window scale 7 (padded with NOPs).
constexpr std::array<uint8_t, 12> kSynOptions = {0x02, 0x04, 0x05, 0xb4, 0x01, 0x01,
                                                 0x04, 0x02, 0x01, 0x03, 0x03, 0x07};

}  // namespace

TcpConversation::TcpConversation(const Peer& client, const Peer& server, const Timing& timing,
                                 Rng& rng, FrameList& out)
    : now_us_(timing.start_us), rtt_us_(timing.rtt_us), rng_(rng), out_(out) {
  client_.peer = client;
  client_.next_seq = rng.U32();
  client_.ip_id = rng.U16();
  client_.window = 64240;  // Linux's initial window for MSS 1460
  server_.peer = server;
  server_.next_seq = rng.U32();
  server_.ip_id = rng.U16();
  server_.window = 65535;
}

void TcpConversation::Emit(Side& from, Side& to, uint8_t flags, std::span<const uint8_t> payload,
                           std::span<const uint8_t> options) {
  IpFields ip;
  ip.src_mac = from.peer.mac;
  ip.dst_mac = to.peer.mac;
  ip.src_ip = from.peer.ip;
  ip.dst_ip = to.peer.ip;
  ip.ttl = from.peer.ttl;
  ip.ip_id = from.ip_id++;
  TcpFields tcp;
  tcp.src_port = from.peer.port;
  tcp.dst_port = to.peer.port;
  tcp.seq = from.next_seq;
  tcp.ack = (flags & kTcpAck) != 0 ? to.next_seq : 0;
  tcp.flags = flags;
  tcp.window = from.window;
  tcp.options = options;
  out_.push_back({now_us_, BuildTcpFrame(ip, tcp, payload)});
  // SYN and FIN each consume one sequence number.
  from.next_seq += static_cast<uint32_t>(payload.size());
  if ((flags & (kTcpSyn | kTcpFin)) != 0) from.next_seq += 1;
}

void TcpConversation::Open() {
  Emit(client_, server_, kTcpSyn, {}, kSynOptions);
  now_us_ += rtt_us_;
  Emit(server_, client_, kTcpSyn | kTcpAck, {}, kSynOptions);
  now_us_ += kStackDelayUs;
  // After the handshake both sides advertise scaled windows (shift 7).
  client_.window = 502;
  server_.window = static_cast<uint16_t>(rng_.Between(230, 510));
  Emit(client_, server_, kTcpAck, {});
}

void TcpConversation::SendData(Side& from, Side& to, std::span<const uint8_t> data,
                               bool receiver_acks) {
  size_t sent_segments = 0;
  for (size_t offset = 0; offset < data.size(); offset += kMss) {
    if (offset > 0) now_us_ += kSegmentGapUs;
    const size_t length = std::min(kMss, data.size() - offset);
    const bool last = offset + length == data.size();
    Emit(from, to, static_cast<uint8_t>(kTcpAck | (last ? kTcpPsh : 0)),
         data.subspan(offset, length));
    ++sent_segments;
    // Delayed ACK: the receiver acknowledges every second full segment, and the end of
    // the burst.
    if (receiver_acks && (sent_segments % 2 == 0 || last)) {
      const uint64_t sent_at = now_us_;
      now_us_ += kStackDelayUs;
      Emit(to, from, kTcpAck, {});
      now_us_ = sent_at;
    }
  }
}

void TcpConversation::ClientSends(std::span<const uint8_t> data, uint32_t think_us) {
  now_us_ += kStackDelayUs + think_us;
  SendData(client_, server_, data, /*receiver_acks=*/false);
}

void TcpConversation::ServerSends(std::span<const uint8_t> data, uint32_t think_us) {
  now_us_ += rtt_us_ + think_us;
  SendData(server_, client_, data, /*receiver_acks=*/true);
  now_us_ += kStackDelayUs;  // the client's last ACK went out before anything else
}

void TcpConversation::Close() {
  now_us_ += kStackDelayUs + static_cast<uint32_t>(rng_.Between(200, 3000));
  Emit(client_, server_, kTcpFin | kTcpAck, {});
  now_us_ += rtt_us_;
  Emit(server_, client_, kTcpFin | kTcpAck, {});
  now_us_ += kStackDelayUs;
  Emit(client_, server_, kTcpAck, {});
}

UdpConversation::UdpConversation(const Peer& client, const Peer& server, const Timing& timing,
                                 Rng& rng, FrameList& out)
    : client_(client),
      server_(server),
      client_ip_id_(rng.U16()),
      server_ip_id_(rng.U16()),
      now_us_(timing.start_us),
      rtt_us_(timing.rtt_us),
      out_(out) {}

void UdpConversation::Emit(const Peer& from, const Peer& to, uint16_t& ip_id,
                           std::span<const uint8_t> data) {
  IpFields ip;
  ip.src_mac = from.mac;
  ip.dst_mac = to.mac;
  ip.src_ip = from.ip;
  ip.dst_ip = to.ip;
  ip.ttl = from.ttl;
  ip.ip_id = ip_id++;
  out_.push_back({now_us_, BuildUdpFrame(ip, from.port, to.port, data)});
}

void UdpConversation::ClientSends(std::span<const uint8_t> data, uint32_t think_us) {
  now_us_ += think_us;
  Emit(client_, server_, client_ip_id_, data);
}

void UdpConversation::ServerReplies(std::span<const uint8_t> data, uint32_t think_us) {
  now_us_ += rtt_us_ + think_us;
  Emit(server_, client_, server_ip_id_, data);
}

void UdpConversation::ServerContinues(std::span<const uint8_t> data) {
  now_us_ += kSegmentGapUs;
  Emit(server_, client_, server_ip_id_, data);
}

}  // namespace flowgate::trafficgen
