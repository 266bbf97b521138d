// QUIC version 1 (RFC 9000) packets. Initial packets are protected for real with the
// keys every observer can derive from the client's first Destination Connection ID
// (RFC 9001 section 5.2): nDPI decrypts the client's Initial to read the TLS ClientHello
// and its SNI, so random bytes would leave the flow unnamed. Handshake and 1-RTT packets
// use keys only the endpoints know, so random bytes behind a correct header are exact.
#pragma once

#include <cstdint>
#include <span>

#include "byte_writer.h"
#include "rng.h"

namespace flowgate::trafficgen {

// RFC 9000 section 16 variable-length integer.
void WriteQuicVarint(ByteWriter& w, uint64_t value);

struct QuicInitialFields {
  bool from_client = true;
  std::span<const uint8_t> original_dcid;  // the client's first DCID: selects the keys
  std::span<const uint8_t> dcid, scid;
  uint32_t packet_number = 0;
  uint64_t acknowledge = UINT64_MAX;  // the peer's packet number to ACK; MAX = no ACK frame
  std::span<const uint8_t> crypto;    // TLS handshake bytes for a CRYPTO frame at offset 0
  size_t pad_to = 0;                  // PADDING frames grow the packet to this many bytes
};
Bytes QuicInitialPacket(const QuicInitialFields& fields);

// A Handshake packet whose protected payload (keys unknown to observers) is random.
Bytes QuicHandshakePacket(std::span<const uint8_t> dcid, std::span<const uint8_t> scid,
                          size_t payload_size, Rng& rng);
// A 1-RTT (short header) packet with a random protected payload.
Bytes QuicShortPacket(std::span<const uint8_t> dcid, size_t payload_size, Rng& rng);

// The quic_transport_parameters TLS extension body Chrome sends.
Bytes QuicClientTransportParameters(std::span<const uint8_t> initial_scid);

}  // namespace flowgate::trafficgen
