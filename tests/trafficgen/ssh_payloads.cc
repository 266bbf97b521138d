#include <string_view>

#include "payloads.h"

namespace flowgate::trafficgen {
namespace {

constexpr uint8_t kMsgNewKeys = 21;
constexpr uint8_t kMsgKexInit = 20;
constexpr uint8_t kMsgKexEcdhInit = 30;
constexpr uint8_t kMsgKexEcdhReply = 31;
constexpr size_t kBlockSize = 8;  // before NEWKEYS, packets align to 8 bytes
constexpr size_t kPoly1305TagSize = 16;

// OpenSSH 9.2's client offer, with the host key list narrowed to the key type already in
// known_hosts (as OpenSSH does). The narrowing also keeps KEXINIT inside one TCP segment:
// nDPI reads the HASSH lists only from the segment that starts the message.
constexpr std::string_view kClientKex =
    "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,"
    "ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,"
    "diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,"
    "diffie-hellman-group18-sha512,diffie-hellman-group14-sha256,ext-info-c";
constexpr std::string_view kClientHostKeys =
    "ssh-ed25519-cert-v01@openssh.com,ssh-ed25519,sk-ssh-ed25519-cert-v01@openssh.com,"
    "sk-ssh-ed25519@openssh.com";
// OpenSSH 9.2's server offer (sshd's default HostKeyAlgorithms for its three host keys).
constexpr std::string_view kServerKex =
    "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,"
    "ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,"
    "diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,"
    "diffie-hellman-group18-sha512,diffie-hellman-group14-sha256";
constexpr std::string_view kServerHostKeys =
    "rsa-sha2-512,rsa-sha2-256,ecdsa-sha2-nistp256,ssh-ed25519";
constexpr std::string_view kCiphers =
    "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,"
    "aes256-gcm@openssh.com";
constexpr std::string_view kMacs =
    "umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,"
    "hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,"
    "umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1";
constexpr std::string_view kClientCompression = "none,zlib@openssh.com,zlib";
constexpr std::string_view kServerCompression = "none,zlib@openssh.com";

void WriteString(ByteWriter& w, std::span<const uint8_t> data) {
  w.U32(static_cast<uint32_t>(data.size()));
  w.Append(data);
}
void WriteString(ByteWriter& w, std::string_view text) {
  w.U32(static_cast<uint32_t>(text.size()));
  w.Append(text);
}

// RFC 4253 binary packet before encryption: length, padding length, payload, random
// padding of at least 4 bytes bringing the total to a multiple of the block size.
void WritePlainPacket(ByteWriter& w, std::span<const uint8_t> payload, Rng& rng) {
  size_t padding = kBlockSize - (5 + payload.size()) % kBlockSize;
  if (padding < 4) padding += kBlockSize;
  w.U32(static_cast<uint32_t>(1 + payload.size() + padding));
  w.U8(static_cast<uint8_t>(padding));
  w.Append(payload);
  w.Append(rng.RandomBytes(padding));
}

// The ed25519 public host key blob and a signature blob, as in KEX_ECDH_REPLY.
Bytes Ed25519Blob(size_t key_size, Rng& rng) {
  ByteWriter w;
  WriteString(w, std::string_view("ssh-ed25519"));
  WriteString(w, rng.RandomBytes(key_size));
  return w.Take();
}

}  // namespace

std::string SshIdentification(std::string_view software) {
  return "SSH-2.0-" + std::string(software) + "\r\n";
}

Bytes SshKexInit(bool from_client, Rng& rng) {
  ByteWriter msg;
  msg.U8(kMsgKexInit);
  msg.Append(rng.RandomBytes(16));  // cookie
  WriteString(msg, from_client ? kClientKex : kServerKex);
  WriteString(msg, from_client ? kClientHostKeys : kServerHostKeys);
  WriteString(msg, kCiphers);  // client to server
  WriteString(msg, kCiphers);  // server to client
  WriteString(msg, kMacs);
  WriteString(msg, kMacs);
  WriteString(msg, from_client ? kClientCompression : kServerCompression);
  WriteString(msg, from_client ? kClientCompression : kServerCompression);
  WriteString(msg, std::string_view());  // languages, client to server
  WriteString(msg, std::string_view());  // languages, server to client
  msg.U8(0);                             // first_kex_packet_follows
  msg.U32(0);                            // reserved
  ByteWriter packet;
  WritePlainPacket(packet, msg.bytes(), rng);
  return packet.Take();
}

Bytes SshEcdhInit(Rng& rng) {
  ByteWriter msg;
  msg.U8(kMsgKexEcdhInit);
  WriteString(msg, rng.RandomBytes(32));  // Q_C, the client's curve25519 public key
  ByteWriter packet;
  WritePlainPacket(packet, msg.bytes(), rng);
  return packet.Take();
}

Bytes SshEcdhReplyAndNewKeys(Rng& rng) {
  ByteWriter msg;
  msg.U8(kMsgKexEcdhReply);
  WriteString(msg, Ed25519Blob(32, rng));  // K_S, the host key
  WriteString(msg, rng.RandomBytes(32));   // Q_S, the server's curve25519 public key
  WriteString(msg, Ed25519Blob(64, rng));  // signature over the exchange hash
  ByteWriter packets;
  WritePlainPacket(packets, msg.bytes(), rng);
  packets.Append(SshNewKeys(rng));
  return packets.Take();
}

Bytes SshNewKeys(Rng& rng) {
  const uint8_t msg[] = {kMsgNewKeys};
  ByteWriter packet;
  WritePlainPacket(packet, msg, rng);
  return packet.Take();
}

Bytes SshEncryptedPacket(size_t payload_size, Rng& rng) {
  // chacha20-poly1305@openssh.com: encrypted 4-byte length, then the encrypted
  // padding-length/payload/padding (multiple of 8), then the Poly1305 tag.
  size_t padding = kBlockSize - (1 + payload_size) % kBlockSize;
  if (padding < 4) padding += kBlockSize;
  return rng.RandomBytes(4 + 1 + payload_size + padding + kPoly1305TagSize);
}

}  // namespace flowgate::trafficgen
