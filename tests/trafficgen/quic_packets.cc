#include "quic_packets.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace flowgate::trafficgen {
namespace {

constexpr uint32_t kQuicVersion1 = 0x00000001;
constexpr std::array<uint8_t, 20> kInitialSaltV1 = {0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34,
                                                    0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8,
                                                    0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a};
constexpr size_t kPacketNumberLength = 2;
constexpr size_t kAeadTagLength = 16;
constexpr size_t kSampleLength = 16;
constexpr uint8_t kFramePadding = 0x00;
constexpr uint8_t kFrameAck = 0x02;
constexpr uint8_t kFrameCrypto = 0x06;

using Sha256 = std::array<uint8_t, 32>;

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

// OpenSSL failing on fixed-size AES and HMAC inputs means a broken installation; the
// generator cannot produce anything useful then.
void Check(bool ok, std::string_view what) {
  if (!ok) throw std::runtime_error("OpenSSL " + std::string(what) + " failed");
}

Sha256 HmacSha256(std::span<const uint8_t> key, std::span<const uint8_t> data) {
  Sha256 out{};
  unsigned int length = 0;
  Check(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(),
             out.data(), &length) != nullptr,
        "HMAC");
  return out;
}

// HKDF-Expand-Label (RFC 8446 section 7.1) with an empty context, for outputs <= 32 bytes,
// which need only the first HKDF-Expand block.
Bytes ExpandLabel(std::span<const uint8_t> secret, std::string_view label, size_t length) {
  ByteWriter info;
  info.U16(static_cast<uint16_t>(length));
  const size_t label_length = info.BeginLength(1);
  info.Append("tls13 ");
  info.Append(label);
  info.EndLength(label_length, 1);
  info.U8(0);  // empty context
  info.U8(1);  // HKDF-Expand block counter
  const Sha256 block = HmacSha256(secret, info.bytes());
  return Bytes(block.begin(), block.begin() + static_cast<long>(length));
}

struct InitialKeys {
  Bytes key, iv, hp;
};

InitialKeys DeriveInitialKeys(std::span<const uint8_t> original_dcid, bool client) {
  const Sha256 initial_secret = HmacSha256(kInitialSaltV1, original_dcid);  // HKDF-Extract
  const Bytes secret = ExpandLabel(initial_secret, client ? "client in" : "server in", 32);
  return {ExpandLabel(secret, "quic key", 16), ExpandLabel(secret, "quic iv", 12),
          ExpandLabel(secret, "quic hp", 16)};
}

// AES-128-GCM over `plaintext` with the packet header as associated data; returns
// ciphertext followed by the tag.
Bytes Seal(const InitialKeys& keys, uint32_t packet_number, std::span<const uint8_t> header,
           std::span<const uint8_t> plaintext) {
  Bytes nonce = keys.iv;
  for (size_t i = 0; i < 4; ++i) {
    nonce[nonce.size() - 1 - i] ^= static_cast<uint8_t>(packet_number >> (8 * i));
  }
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  Check(ctx != nullptr, "EVP_CIPHER_CTX_new");
  Check(
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_128_gcm(), nullptr, keys.key.data(), nonce.data()) == 1,
      "AES-GCM init");
  int length = 0;
  Check(EVP_EncryptUpdate(ctx.get(), nullptr, &length, header.data(),
                          static_cast<int>(header.size())) == 1,
        "AES-GCM AAD");
  Bytes out(plaintext.size() + kAeadTagLength);
  Check(EVP_EncryptUpdate(ctx.get(), out.data(), &length, plaintext.data(),
                          static_cast<int>(plaintext.size())) == 1,
        "AES-GCM encrypt");
  Check(EVP_EncryptFinal_ex(ctx.get(), out.data() + length, &length) == 1, "AES-GCM final");
  Check(EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kAeadTagLength),
                            out.data() + plaintext.size()) == 1,
        "AES-GCM tag");
  return out;
}

// RFC 9001 section 5.4: AES-ECB of a ciphertext sample gives the header protection mask.
std::array<uint8_t, 16> HeaderMask(std::span<const uint8_t> hp_key,
                                   std::span<const uint8_t> sample) {
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  Check(ctx != nullptr, "EVP_CIPHER_CTX_new");
  Check(EVP_EncryptInit_ex(ctx.get(), EVP_aes_128_ecb(), nullptr, hp_key.data(), nullptr) == 1,
        "AES-ECB init");
  EVP_CIPHER_CTX_set_padding(ctx.get(), 0);
  std::array<uint8_t, 16> mask{};
  int length = 0;
  Check(EVP_EncryptUpdate(ctx.get(), mask.data(), &length, sample.data(),
                          static_cast<int>(kSampleLength)) == 1,
        "AES-ECB encrypt");
  return mask;
}

// The long header up to the Length field: first byte, version, connection IDs.
void WriteLongHeaderStart(ByteWriter& w, uint8_t type, std::span<const uint8_t> dcid,
                          std::span<const uint8_t> scid) {
  w.U8(static_cast<uint8_t>(0xc0 | (type << 4) | (kPacketNumberLength - 1)));
  w.U32(kQuicVersion1);
  w.U8(static_cast<uint8_t>(dcid.size()));
  w.Append(dcid);
  w.U8(static_cast<uint8_t>(scid.size()));
  w.Append(scid);
}

}  // namespace

void WriteQuicVarint(ByteWriter& w, uint64_t value) {
  if (value < (1ULL << 6)) {
    w.U8(static_cast<uint8_t>(value));
  } else if (value < (1ULL << 14)) {
    w.U16(static_cast<uint16_t>(0x4000 | value));
  } else if (value < (1ULL << 30)) {
    w.U32(static_cast<uint32_t>(0x80000000 | value));
  } else {
    w.U64(0xc000000000000000ULL | value);
  }
}

Bytes QuicInitialPacket(const QuicInitialFields& fields) {
  ByteWriter frames;
  if (fields.acknowledge != UINT64_MAX) {
    frames.U8(kFrameAck);
    WriteQuicVarint(frames, fields.acknowledge);  // largest acknowledged
    WriteQuicVarint(frames, 0);                   // ACK delay
    WriteQuicVarint(frames, 0);                   // no further ranges
    WriteQuicVarint(frames, 0);                   // first range: just that packet
  }
  if (!fields.crypto.empty()) {
    frames.U8(kFrameCrypto);
    WriteQuicVarint(frames, 0);  // offset
    WriteQuicVarint(frames, fields.crypto.size());
    frames.Append(fields.crypto);
  }

  ByteWriter header;
  WriteLongHeaderStart(header, /*type=Initial*/ 0, fields.dcid, fields.scid);
  WriteQuicVarint(header, 0);  // no token
  // Length (2-byte varint) covers packet number, frames and tag; padding fills up to pad_to.
  const size_t fixed = header.size() + 2 + kPacketNumberLength + kAeadTagLength;
  if (fields.pad_to > fixed + frames.size()) {
    frames.Fill(fields.pad_to - fixed - frames.size(), kFramePadding);
  }
  header.U16(
      static_cast<uint16_t>(0x4000 | (kPacketNumberLength + frames.size() + kAeadTagLength)));
  const size_t pn_offset = header.size();
  header.U16(static_cast<uint16_t>(fields.packet_number));

  const InitialKeys keys = DeriveInitialKeys(fields.original_dcid, fields.from_client);
  const Bytes sealed = Seal(keys, fields.packet_number, header.bytes(), frames.bytes());
  Bytes packet = header.Take();
  packet.insert(packet.end(), sealed.begin(), sealed.end());

  // The sample starts 4 bytes after the packet number's first byte (RFC 9001 5.4.2).
  const std::array<uint8_t, 16> mask =
      HeaderMask(keys.hp, std::span<const uint8_t>(packet).subspan(pn_offset + 4, kSampleLength));
  packet[0] ^= mask[0] & 0x0f;  // long header: the low 4 bits are protected
  for (size_t i = 0; i < kPacketNumberLength; ++i) packet[pn_offset + i] ^= mask[1 + i];
  return packet;
}

Bytes QuicHandshakePacket(std::span<const uint8_t> dcid, std::span<const uint8_t> scid,
                          size_t payload_size, Rng& rng) {
  ByteWriter w;
  WriteLongHeaderStart(w, /*type=Handshake*/ 2, dcid, scid);
  w.U16(static_cast<uint16_t>(0x4000 | (kPacketNumberLength + payload_size + kAeadTagLength)));
  w.Append(rng.RandomBytes(kPacketNumberLength + payload_size + kAeadTagLength));
  return w.Take();
}

Bytes QuicShortPacket(std::span<const uint8_t> dcid, size_t payload_size, Rng& rng) {
  ByteWriter w;
  // Header form 0, fixed bit 1; spin, reserved, key phase and PN length bits are masked.
  w.U8(static_cast<uint8_t>(0x40 | (rng.Byte() & 0x3f)));
  w.Append(dcid);
  w.Append(rng.RandomBytes(kPacketNumberLength + payload_size + kAeadTagLength));
  return w.Take();
}

Bytes QuicClientTransportParameters(std::span<const uint8_t> initial_scid) {
  ByteWriter w;
  const auto parameter = [&w](uint64_t id, uint64_t value) {
    WriteQuicVarint(w, id);
    ByteWriter encoded;
    WriteQuicVarint(encoded, value);
    WriteQuicVarint(w, encoded.size());
    w.Append(encoded.bytes());
  };
  parameter(0x01, 30000);     // max_idle_timeout (ms)
  parameter(0x03, 1472);      // max_udp_payload_size
  parameter(0x04, 15728640);  // initial_max_data
  parameter(0x05, 6291456);   // initial_max_stream_data_bidi_local
  parameter(0x06, 6291456);   // initial_max_stream_data_bidi_remote
  parameter(0x07, 6291456);   // initial_max_stream_data_uni
  parameter(0x08, 100);       // initial_max_streams_bidi
  parameter(0x09, 103);       // initial_max_streams_uni
  WriteQuicVarint(w, 0x0f);   // initial_source_connection_id
  WriteQuicVarint(w, initial_scid.size());
  w.Append(initial_scid);
  return w.Take();
}

}  // namespace flowgate::trafficgen
