// Turns "the client sends X, the server answers Y" into timed frames with the transport
// details a real stack would produce: the TCP three-way handshake with options, sequence
// and acknowledgement numbers that advance with the data, MSS-sized segmentation, delayed
// ACKs, a FIN teardown, per-host IP IDs, and latency from a per-session round-trip time.
// The capture point is the client's LAN, so server packets arrive one RTT after the
// client packet they answer.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "byte_writer.h"
#include "packet_builder.h"
#include "rng.h"

namespace flowgate::trafficgen {

// One host as seen at the capture point: its own MAC for a LAN client, the gateway
// router's MAC for a remote server; `ttl` is the TTL its packets arrive with.
struct Peer {
  MacAddress mac{};
  uint32_t ip = 0;
  uint16_t port = 0;
  uint8_t ttl = 64;
};

struct TimedFrame {
  uint64_t time_us = 0;
  Bytes frame;
};

// Shared by all conversations of one capture; frames are sorted by time before writing.
using FrameList = std::vector<TimedFrame>;

struct Timing {
  uint64_t start_us = 0;  // when the client sends the first packet
  uint32_t rtt_us = 0;    // client <-> server round trip
};

class TcpConversation {
 public:
  TcpConversation(const Peer& client, const Peer& server, const Timing& timing, Rng& rng,
                  FrameList& out);

  void Open();  // SYN, SYN/ACK, ACK
  // The client sends `data` right away (after `think_us` of local processing).
  void ClientSends(std::span<const uint8_t> data, uint32_t think_us = 0);
  // The server's answer reaches the client one RTT (plus `think_us` server time) after the
  // client's last packet; the client acknowledges every second segment.
  void ServerSends(std::span<const uint8_t> data, uint32_t think_us = 0);
  // Client FIN, server FIN, client's final ACK.
  void Close();

 private:
  struct Side {
    Peer peer;
    uint32_t next_seq = 0;
    uint16_t ip_id = 0;
    uint16_t window = 0;
  };
  void Emit(Side& from, Side& to, uint8_t flags, std::span<const uint8_t> payload,
            std::span<const uint8_t> options = {});
  void SendData(Side& from, Side& to, std::span<const uint8_t> data, bool receiver_acks);

  Side client_, server_;
  uint64_t now_us_;
  uint32_t rtt_us_;
  Rng& rng_;
  FrameList& out_;
};

class UdpConversation {
 public:
  UdpConversation(const Peer& client, const Peer& server, const Timing& timing, Rng& rng,
                  FrameList& out);

  void ClientSends(std::span<const uint8_t> data, uint32_t think_us = 0);
  // Arrives one RTT (plus `think_us`) after the client's last datagram.
  void ServerReplies(std::span<const uint8_t> data, uint32_t think_us = 0);
  // The next datagram of a server burst, right behind the previous one.
  void ServerContinues(std::span<const uint8_t> data);

 private:
  void Emit(const Peer& from, const Peer& to, uint16_t& ip_id, std::span<const uint8_t> data);

  Peer client_, server_;
  uint16_t client_ip_id_, server_ip_id_;
  uint64_t now_us_;
  uint32_t rtt_us_;
  FrameList& out_;
};

}  // namespace flowgate::trafficgen
