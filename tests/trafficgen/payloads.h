// Application-layer messages, byte-exact as real clients and servers send them. nDPI
// classifies by parsing these (DNS question names, the TLS ClientHello's SNI and the
// fields JA3 hashes, HTTP Host lines, SSH banners and KEXINIT lists, the NTP header), and
// flags a flow as malformed when a length field disagrees with the data, so every length
// here is computed by ByteWriter. Ciphertext, keys and nonces are random bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "byte_writer.h"
#include "rng.h"

namespace flowgate::trafficgen {

// --- DNS (dns_payloads.cc) ---
// A recursive query for the A record of `name`.
Bytes DnsQuery(uint16_t id, std::string_view name);
// The resolver's answer: the question echoed and one A record per address.
Bytes DnsAnswer(uint16_t id, std::string_view name, std::span<const uint32_t> addresses,
                uint32_t ttl_seconds);

// --- NTP (ntp_payloads.cc) ---
// A 64-bit NTP timestamp (seconds since 1900 . fraction) for a Unix time in microseconds.
uint64_t NtpTimestamp(uint64_t unix_us);
// An NTPv4 client-mode request as systemd-timesyncd sends it: only the transmit time set.
Bytes NtpClientRequest(uint64_t transmit_unix_us);
struct NtpServerInfo {
  uint8_t stratum = 2;
  uint32_t reference_id = 0;  // upstream server's IPv4, or four ASCII letters at stratum 1
};
// The server-mode reply, echoing the client's transmit time as the origin time.
Bytes NtpServerReply(const NtpServerInfo& server, uint64_t client_transmit_unix_us,
                     uint64_t receive_unix_us, Rng& rng);

// --- HTTP (http_payloads.cc) ---
std::string HttpGetRequest(std::string_view host, std::string_view path);
// A 200 response whose Date header is `unix_us` in RFC 9110 (IMF-fixdate) form.
std::string HttpOkResponse(std::string_view server, std::string_view content_type,
                           std::string_view body, uint64_t unix_us);

// --- TLS 1.3 over TCP and QUIC (tls_payloads.cc) ---
// A Firefox-like ClientHello record: SNI, ALPN h2/http/1.1, supported_versions 1.3/1.2,
// supported groups, signature algorithms, key share. `session_id` is 32 bytes (TLS 1.3
// middlebox compatibility mode), echoed by the server.
Bytes TlsClientHello(std::string_view server_name, std::span<const uint8_t> session_id, Rng& rng);
// The server's first flight: ServerHello (TLS_AES_128_GCM_SHA256, X25519),
// ChangeCipherSpec, then the encrypted EncryptedExtensions..Finished as one record.
Bytes TlsServerFirstFlight(std::span<const uint8_t> session_id, Rng& rng);
// The client's ChangeCipherSpec and encrypted Finished.
Bytes TlsClientFinished(Rng& rng);
// `plaintext_size` bytes of application data as records of at most 16 KiB each, with the
// 17-byte AEAD overhead (inner content type + 16-byte tag) real records carry.
Bytes TlsApplicationData(size_t plaintext_size, Rng& rng);
// An encrypted close_notify alert.
Bytes TlsCloseNotify(Rng& rng);

// TLS handshake messages without the record layer, as QUIC carries them in CRYPTO frames:
// a Chrome-like ClientHello (ALPN h3, TLS 1.3 only, quic_transport_parameters) and the
// ServerHello answering it.
Bytes QuicTlsClientHello(std::string_view server_name,
                         std::span<const uint8_t> transport_parameters, Rng& rng);
Bytes QuicTlsServerHello(Rng& rng);

// --- SSH (ssh_payloads.cc) ---
// The identification line, "SSH-2.0-<software>\r\n".
std::string SshIdentification(std::string_view software);
// SSH_MSG_KEXINIT with OpenSSH 9.x algorithm lists for the client or the server side.
Bytes SshKexInit(bool from_client, Rng& rng);
// SSH_MSG_KEX_ECDH_INIT with a curve25519 public key.
Bytes SshEcdhInit(Rng& rng);
// SSH_MSG_KEX_ECDH_REPLY (ed25519 host key, curve25519 key, signature) and SSH_MSG_NEWKEYS,
// which OpenSSH sends in one write.
Bytes SshEcdhReplyAndNewKeys(Rng& rng);
Bytes SshNewKeys(Rng& rng);
// One chacha20-poly1305 encrypted packet carrying `payload_size` bytes of payload.
Bytes SshEncryptedPacket(size_t payload_size, Rng& rng);

}  // namespace flowgate::trafficgen
