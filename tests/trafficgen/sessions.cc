#include "sessions.h"

#include <string>

#include "payloads.h"
#include "quic_packets.h"

namespace flowgate::trafficgen {
namespace {

// Remote servers. Addresses are real ones for each name (so nDPI's IP lists agree with the
// payload), TTLs are what arrives after the usual hop count from the server OS's initial
// TTL (64 for Linux, 128 for Windows), and RTTs are typical from a European home line.
struct Server {
  std::string_view name;
  uint32_t ip;
  uint8_t ttl;
  uint32_t rtt_ms;
};

// Looked up over DNS and then visited over HTTPS.
constexpr Server kHttpsServers[] = {
    {"www.youtube.com", Ipv4(142, 250, 185, 206), 117, 9},
    {"www.netflix.com", Ipv4(54, 155, 178, 5), 52, 24},
    {"github.com", Ipv4(140, 82, 121, 4), 51, 21},
    {"www.facebook.com", Ipv4(157, 240, 9, 35), 57, 11},
    {"www.google.com", Ipv4(142, 250, 186, 68), 117, 9},
    {"api.twitter.com", Ipv4(104, 244, 42, 66), 53, 27},
    {"outlook.office365.com", Ipv4(52, 97, 146, 162), 113, 14},
};

// Reached over QUIC (HTTP/3) by Chrome; the operators that serve HTTP/3 at these names.
constexpr Server kQuicServers[] = {
    {"www.youtube.com", Ipv4(142, 250, 185, 206), 117, 9},
    {"www.google.com", Ipv4(142, 250, 186, 68), 117, 9},
    {"www.facebook.com", Ipv4(157, 240, 9, 35), 57, 11},
};

struct HttpSite {
  Server server;
  std::string_view path, server_header, content_type, body;
};
constexpr HttpSite kHttpSites[] = {
    {{"www.wikipedia.org", Ipv4(185, 15, 59, 224), 55, 18},
     "/",
     "ATS/9.1.4",
     "text/html; charset=utf-8",
     "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
     "<title>Wikipedia</title>\n</head>\n<body>\n<h1>Wikipedia</h1>\n"
     "<p>The Free Encyclopedia</p>\n</body>\n</html>\n"},
    {{"example.com", Ipv4(93, 184, 216, 34), 55, 92},
     "/",
     "ECS (dcb/7F83)",
     "text/html; charset=UTF-8",
     "<!doctype html>\n<html>\n<head>\n    <title>Example Domain</title>\n</head>\n<body>\n"
     "<div>\n    <h1>Example Domain</h1>\n    <p>This domain is for use in illustrative "
     "examples in documents.</p>\n</div>\n</body>\n</html>\n"},
    {{"detectportal.firefox.com", Ipv4(34, 107, 221, 82), 119, 8},
     "/canonical.html",
     "nginx",
     "text/html",
     "<meta http-equiv=\"refresh\" "
     "content=\"0;url=https://support.mozilla.org/kb/captive-portal\"/>"},
    {{"www.msftconnecttest.com", Ipv4(2, 16, 186, 11), 57, 10},
     "/connecttest.txt",
     "Microsoft-IIS/10.0",
     "text/plain",
     "Microsoft Connect Test"},
};

struct NtpServer {
  Server server;
  NtpServerInfo info;
};
constexpr NtpServer kNtpServers[] = {
    {{"time.cloudflare.com", Ipv4(162, 159, 200, 123), 57, 9}, {3, Ipv4(10, 82, 8, 4)}},
    {{"time.google.com", Ipv4(216, 239, 35, 4), 117, 10}, {1, 0x474f4f47}},  // "GOOG"
    {{"ntp.ubuntu.com", Ipv4(185, 125, 190, 57), 54, 16}, {2, Ipv4(17, 253, 34, 125)}},
    {{"0.debian.pool.ntp.org", Ipv4(78, 46, 76, 11), 55, 28}, {2, Ipv4(131, 188, 3, 222)}},
};

struct SshServer {
  Server server;
  std::string_view software;
};
constexpr SshServer kSshServers[] = {
    {{"build.example.net", Ipv4(95, 216, 161, 36), 51, 29}, "OpenSSH_9.2p1 Debian-2+deb12u1"},
    {{"vps.example.org", Ipv4(159, 89, 12, 51), 53, 22}, "OpenSSH_8.9p1 Ubuntu-3ubuntu0.6"},
    {{"bastion.example.com", Ipv4(51, 15, 200, 20), 52, 17}, "OpenSSH_9.2p1 Debian-2"},
};
constexpr std::string_view kClientSshSoftware = "OpenSSH_9.2p1 Debian-2";

constexpr uint16_t kPortDns = 53;
constexpr uint16_t kPortHttp = 80;
constexpr uint16_t kPortHttps = 443;
constexpr uint16_t kPortNtp = 123;
constexpr uint16_t kPortSsh = 22;

// Jitters a server's nominal RTT by up to +25%, as queueing on a real line does.
Timing TimingFor(const SessionPlan& plan, uint32_t rtt_ms, Rng& rng) {
  const uint64_t rtt_us = uint64_t{rtt_ms} * 1000;
  return {plan.start_us, static_cast<uint32_t>(rtt_us + rng.Below(rtt_us / 4 + 1))};
}

Peer RemotePeer(const SessionPlan& plan, const Server& server, uint16_t port) {
  return {plan.router_mac, server.ip, port, server.ttl};
}

std::span<const uint8_t> AsBytes(const std::string& text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

uint32_t Ms(uint64_t lo, uint64_t hi, Rng& rng) {
  return static_cast<uint32_t>(rng.Between(lo * 1000, hi * 1000));
}

void GenerateDns(const SessionPlan& plan, Rng& rng, FrameList& out) {
  const Server& target = rng.Pick<Server>(kHttpsServers);
  // The router's resolver answers from cache in about a millisecond, or after an upstream
  // round trip of tens of milliseconds.
  const Peer resolver{plan.router_mac, plan.resolver_ip, kPortDns, 64};
  const uint32_t rtt_ms = rng.Below(2) == 0 ? 1 : static_cast<uint32_t>(rng.Between(12, 45));
  UdpConversation udp(plan.client, resolver, TimingFor(plan, rtt_ms, rng), rng, out);
  const uint16_t id = rng.U16();
  udp.ClientSends(DnsQuery(id, target.name));
  const uint32_t addresses[] = {target.ip};
  udp.ServerReplies(
      DnsAnswer(id, target.name, addresses, static_cast<uint32_t>(rng.Between(30, 300))));
}

void GenerateTls(const SessionPlan& plan, Rng& rng, FrameList& out) {
  const Server& server = rng.Pick<Server>(kHttpsServers);
  TcpConversation tcp(plan.client, RemotePeer(plan, server, kPortHttps),
                      TimingFor(plan, server.rtt_ms, rng), rng, out);
  tcp.Open();
  const Bytes session_id = rng.RandomBytes(32);
  tcp.ClientSends(TlsClientHello(server.name, session_id, rng));
  tcp.ServerSends(TlsServerFirstFlight(session_id, rng), Ms(1, 4, rng));
  tcp.ClientSends(TlsClientFinished(rng), Ms(0, 1, rng));
  // One to three HTTP/2 request/response exchanges; the first response is preceded by
  // two NewSessionTicket messages, as TLS 1.3 servers send them after the handshake.
  const uint64_t exchanges = rng.Between(1, 3);
  for (uint64_t i = 0; i < exchanges; ++i) {
    tcp.ClientSends(TlsApplicationData(rng.Between(90, 650), rng));
    Bytes response;
    if (i == 0) {
      response = TlsApplicationData(rng.Between(180, 260), rng);
      const Bytes second_ticket = TlsApplicationData(rng.Between(180, 260), rng);
      response.insert(response.end(), second_ticket.begin(), second_ticket.end());
    }
    const Bytes body = TlsApplicationData(rng.Between(600, 48000), rng);
    response.insert(response.end(), body.begin(), body.end());
    tcp.ServerSends(response, Ms(3, 40, rng));
  }
  tcp.ClientSends(TlsCloseNotify(rng), Ms(50, 900, rng));
  tcp.Close();
}

void GenerateHttp(const SessionPlan& plan, Rng& rng, FrameList& out) {
  const HttpSite& site = rng.Pick<HttpSite>(kHttpSites);
  TcpConversation tcp(plan.client, RemotePeer(plan, site.server, kPortHttp),
                      TimingFor(plan, site.server.rtt_ms, rng), rng, out);
  tcp.Open();
  tcp.ClientSends(AsBytes(HttpGetRequest(site.server.name, site.path)));
  const uint32_t think_us = Ms(1, 25, rng);
  // The Date header shows when the server answered: the request reaches it 1.5 RTTs
  // after the SYN left the client.
  const uint64_t answered_us = plan.start_us + 1500ULL * site.server.rtt_ms + think_us;
  tcp.ServerSends(
      AsBytes(HttpOkResponse(site.server_header, site.content_type, site.body, answered_us)),
      think_us);
  tcp.Close();
}

void GenerateNtp(const SessionPlan& plan, Rng& rng, FrameList& out) {
  const NtpServer& ntp = rng.Pick<NtpServer>(kNtpServers);
  const Timing timing = TimingFor(plan, ntp.server.rtt_ms, rng);
  UdpConversation udp(plan.client, RemotePeer(plan, ntp.server, kPortNtp), timing, rng, out);
  udp.ClientSends(NtpClientRequest(plan.start_us));
  // The server stamps the request half a round trip after it left the client.
  udp.ServerReplies(
      NtpServerReply(ntp.info, plan.start_us, plan.start_us + timing.rtt_us / 2, rng));
}

void GenerateSsh(const SessionPlan& plan, Rng& rng, FrameList& out) {
  const SshServer& ssh = rng.Pick<SshServer>(kSshServers);
  TcpConversation tcp(plan.client, RemotePeer(plan, ssh.server, kPortSsh),
                      TimingFor(plan, ssh.server.rtt_ms, rng), rng, out);
  tcp.Open();
  tcp.ClientSends(AsBytes(SshIdentification(kClientSshSoftware)));
  tcp.ServerSends(AsBytes(SshIdentification(ssh.software)), Ms(2, 9, rng));
  tcp.ClientSends(SshKexInit(/*from_client=*/true, rng));
  tcp.ServerSends(SshKexInit(/*from_client=*/false, rng));
  tcp.ClientSends(SshEcdhInit(rng));
  tcp.ServerSends(SshEcdhReplyAndNewKeys(rng), Ms(1, 3, rng));
  // NEWKEYS and the encrypted SERVICE_REQUEST ("ssh-userauth") leave together.
  Bytes request = SshNewKeys(rng);
  const Bytes service_request = SshEncryptedPacket(17, rng);
  request.insert(request.end(), service_request.begin(), service_request.end());
  tcp.ClientSends(request);
  tcp.ServerSends(SshEncryptedPacket(17, rng));  // SERVICE_ACCEPT
  // Public-key authentication: a probe, the server's OK, the signed request, success.
  tcp.ClientSends(SshEncryptedPacket(rng.Between(380, 420), rng));
  tcp.ServerSends(SshEncryptedPacket(rng.Between(60, 80), rng));
  tcp.ClientSends(SshEncryptedPacket(rng.Between(450, 520), rng), Ms(20, 200, rng));
  tcp.ServerSends(SshEncryptedPacket(1, rng), Ms(2, 8, rng));
  // Opening the session channel and a short interactive exchange.
  const uint64_t keystrokes = rng.Between(3, 12);
  for (uint64_t i = 0; i < keystrokes; ++i) {
    tcp.ClientSends(SshEncryptedPacket(rng.Between(9, 40), rng), Ms(80, 400, rng));
    tcp.ServerSends(SshEncryptedPacket(rng.Between(9, 600), rng));
  }
  tcp.Close();
}

void GenerateQuic(const SessionPlan& plan, Rng& rng, FrameList& out) {
  // Chrome pads datagrams carrying Initial packets to this size (RFC 9000 asks >= 1200).
  constexpr size_t kInitialDatagramSize = 1250;
  constexpr size_t kMaxShortPayload = 1200;  // what fits a 1250-byte datagram
  const Server& server = rng.Pick<Server>(kQuicServers);
  UdpConversation udp(plan.client, RemotePeer(plan, server, kPortHttps),
                      TimingFor(plan, server.rtt_ms, rng), rng, out);
  const Bytes original_dcid = rng.RandomBytes(8);
  const Bytes client_cid = rng.RandomBytes(8);
  const Bytes server_cid = rng.RandomBytes(8);

  const Bytes hello =
      QuicTlsClientHello(server.name, QuicClientTransportParameters(client_cid), rng);
  QuicInitialFields initial;
  initial.original_dcid = original_dcid;
  initial.dcid = original_dcid;
  initial.scid = client_cid;
  initial.packet_number = 0;
  initial.crypto = hello;
  initial.pad_to = kInitialDatagramSize;
  udp.ClientSends(QuicInitialPacket(initial));

  // The server's Initial (ACK + ServerHello) with the first Handshake packet coalesced,
  // then the rest of the encrypted certificate chain.
  QuicInitialFields reply;
  reply.from_client = false;
  reply.original_dcid = original_dcid;
  reply.dcid = client_cid;
  reply.scid = server_cid;
  reply.packet_number = 0;
  reply.acknowledge = 0;
  const Bytes server_hello = QuicTlsServerHello(rng);
  reply.crypto = server_hello;
  Bytes datagram = QuicInitialPacket(reply);
  const Bytes handshake = QuicHandshakePacket(client_cid, server_cid, 1000, rng);
  datagram.insert(datagram.end(), handshake.begin(), handshake.end());
  udp.ServerReplies(datagram, Ms(1, 3, rng));
  udp.ServerContinues(QuicHandshakePacket(client_cid, server_cid, rng.Between(700, 1150), rng));

  // The client ACKs the server's Initial and finishes the handshake; the datagram is
  // padded (inside the Initial) as every datagram carrying an Initial must be.
  const Bytes finished = QuicHandshakePacket(server_cid, client_cid, 58, rng);
  QuicInitialFields ack;
  ack.original_dcid = original_dcid;
  ack.dcid = server_cid;
  ack.scid = client_cid;
  ack.packet_number = 1;
  ack.acknowledge = 0;
  ack.pad_to = kInitialDatagramSize - finished.size();
  datagram = QuicInitialPacket(ack);
  datagram.insert(datagram.end(), finished.begin(), finished.end());
  udp.ClientSends(datagram, 60);

  // HTTP/3 requests (short header packets) and the server's responses, with the client
  // acknowledging every second packet.
  const uint64_t requests = rng.Between(1, 3);
  for (uint64_t r = 0; r < requests; ++r) {
    udp.ClientSends(QuicShortPacket(server_cid, rng.Between(80, 400), rng), Ms(0, 30, rng));
    const uint64_t packets = rng.Between(2, 30);
    for (uint64_t i = 0; i < packets; ++i) {
      const Bytes packet = QuicShortPacket(
          client_cid, i + 1 < packets ? kMaxShortPayload : rng.Between(40, kMaxShortPayload), rng);
      if (i == 0) {
        udp.ServerReplies(packet, Ms(2, 30, rng));
      } else {
        udp.ServerContinues(packet);
      }
      if (i % 2 == 1 || i + 1 == packets)
        udp.ClientSends(QuicShortPacket(server_cid, rng.Between(6, 12), rng), 40);
    }
  }
}

}  // namespace

void GenerateSession(const SessionPlan& plan, Rng& rng, FrameList& out) {
  switch (plan.kind) {
    case SessionKind::kDns:
      return GenerateDns(plan, rng, out);
    case SessionKind::kTls:
      return GenerateTls(plan, rng, out);
    case SessionKind::kHttp:
      return GenerateHttp(plan, rng, out);
    case SessionKind::kNtp:
      return GenerateNtp(plan, rng, out);
    case SessionKind::kSsh:
      return GenerateSsh(plan, rng, out);
    case SessionKind::kQuic:
      return GenerateQuic(plan, rng, out);
  }
}

}  // namespace flowgate::trafficgen
