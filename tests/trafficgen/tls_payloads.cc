#include <algorithm>
#include <initializer_list>

#include "payloads.h"

namespace flowgate::trafficgen {
namespace {

constexpr uint8_t kContentChangeCipherSpec = 20;
constexpr uint8_t kContentHandshake = 22;
constexpr uint8_t kContentApplicationData = 23;
constexpr uint8_t kHandshakeClientHello = 1;
constexpr uint8_t kHandshakeServerHello = 2;
constexpr uint16_t kLegacyVersionTls12 = 0x0303;
// Clients put TLS 1.0 in the ClientHello's record header for old middleboxes' sake.
constexpr uint16_t kRecordVersionTls10 = 0x0301;
constexpr uint16_t kTlsAes128GcmSha256 = 0x1301;
constexpr uint16_t kGroupX25519 = 0x001d;
constexpr size_t kMaxRecordPlaintext = 16384;
constexpr size_t kAeadOverhead = 17;  // inner content type byte + 16-byte tag

// Firefox 115's offer over TCP, in its order.
constexpr uint16_t kFirefoxCipherSuites[] = {0x1301, 0x1303, 0x1302, 0xc02b, 0xc02f, 0xcca9,
                                             0xcca8, 0xc02c, 0xc030, 0xc00a, 0xc009, 0xc013,
                                             0xc014, 0x009c, 0x009d, 0x002f, 0x0035};
constexpr uint16_t kFirefoxGroups[] = {0x001d, 0x0017, 0x0018, 0x0019, 0x0100, 0x0101};
constexpr uint16_t kFirefoxSignatureAlgorithms[] = {0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806,
                                                    0x0401, 0x0501, 0x0601, 0x0203, 0x0201};
// Chrome's offer over QUIC, which allows only TLS 1.3 suites.
constexpr uint16_t kChromeQuicCipherSuites[] = {0x1301, 0x1302, 0x1303};
constexpr uint16_t kChromeGroups[] = {0x001d, 0x0017, 0x0018};
constexpr uint16_t kChromeSignatureAlgorithms[] = {0x0403, 0x0804, 0x0401, 0x0503,
                                                   0x0805, 0x0501, 0x0806, 0x0601};

// Writes one extension: type, 2-byte length, then whatever `body` writes.
template <typename Body>
void Extension(ByteWriter& w, uint16_t type, Body body) {
  w.U16(type);
  const size_t length = w.BeginLength(2);
  body();
  w.EndLength(length, 2);
}

void U16List(ByteWriter& w, std::span<const uint16_t> values) {
  const size_t length = w.BeginLength(2);
  for (uint16_t v : values) w.U16(v);
  w.EndLength(length, 2);
}

void ServerNameExtension(ByteWriter& w, std::string_view server_name) {
  Extension(w, 0x0000, [&] {
    const size_t list = w.BeginLength(2);
    w.U8(0);  // host_name
    const size_t name = w.BeginLength(2);
    w.Append(server_name);
    w.EndLength(name, 2);
    w.EndLength(list, 2);
  });
}

void AlpnExtension(ByteWriter& w, std::initializer_list<std::string_view> protocols) {
  Extension(w, 0x0010, [&] {
    const size_t list = w.BeginLength(2);
    for (std::string_view protocol : protocols) {
      w.U8(static_cast<uint8_t>(protocol.size()));
      w.Append(protocol);
    }
    w.EndLength(list, 2);
  });
}

void X25519KeyShareExtension(ByteWriter& w, Rng& rng) {
  Extension(w, 0x0033, [&] {
    const size_t list = w.BeginLength(2);
    w.U16(kGroupX25519);
    w.U16(32);
    w.Append(rng.RandomBytes(32));
    w.EndLength(list, 2);
  });
}

void SupportedVersionsExtension(ByteWriter& w, std::initializer_list<uint16_t> versions) {
  Extension(w, 0x002b, [&] {
    w.U8(static_cast<uint8_t>(2 * versions.size()));
    for (uint16_t version : versions) w.U16(version);
  });
}

void PskModesExtension(ByteWriter& w) {
  Extension(w, 0x002d, [&] {
    w.U8(1);
    w.U8(1);  // psk_dhe_ke
  });
}

void FirefoxExtensions(ByteWriter& w, std::string_view server_name, Rng& rng) {
  ServerNameExtension(w, server_name);
  Extension(w, 0x0017, [] {});             // extended_master_secret
  Extension(w, 0xff01, [&] { w.U8(0); });  // renegotiation_info
  Extension(w, 0x000a, [&] { U16List(w, kFirefoxGroups); });
  Extension(w, 0x000b, [&] {  // ec_point_formats: uncompressed
    w.U8(1);
    w.U8(0);
  });
  Extension(w, 0x0023, [] {});  // session_ticket (none yet)
  AlpnExtension(w, {"h2", "http/1.1"});
  Extension(w, 0x0005, [&] {  // status_request: OCSP
    w.U8(1);
    w.U16(0);
    w.U16(0);
  });
  X25519KeyShareExtension(w, rng);
  SupportedVersionsExtension(w, {0x0304, 0x0303});
  Extension(w, 0x000d, [&] { U16List(w, kFirefoxSignatureAlgorithms); });
  PskModesExtension(w);
  Extension(w, 0x001c, [&] { w.U16(0x4001); });  // record_size_limit: 16385
}

void ChromeQuicExtensions(ByteWriter& w, std::string_view server_name,
                          std::span<const uint8_t> transport_parameters, Rng& rng) {
  ServerNameExtension(w, server_name);
  Extension(w, 0x000a, [&] { U16List(w, kChromeGroups); });
  Extension(w, 0x000d, [&] { U16List(w, kChromeSignatureAlgorithms); });
  AlpnExtension(w, {"h3"});
  X25519KeyShareExtension(w, rng);
  PskModesExtension(w);
  SupportedVersionsExtension(w, {0x0304});
  Extension(w, 0x0039, [&] { w.Append(transport_parameters); });  // quic_transport_parameters
}

// The ClientHello handshake message around the extensions `write_extensions` emits.
template <typename WriteExtensions>
Bytes ClientHelloMessage(std::span<const uint8_t> session_id, std::span<const uint16_t> suites,
                         Rng& rng, WriteExtensions write_extensions) {
  ByteWriter hello;
  hello.U8(kHandshakeClientHello);
  const size_t body = hello.BeginLength(3);
  hello.U16(kLegacyVersionTls12);
  hello.Append(rng.RandomBytes(32));  // client random
  hello.U8(static_cast<uint8_t>(session_id.size()));
  hello.Append(session_id);
  U16List(hello, suites);
  hello.U8(1);  // one compression method: null
  hello.U8(0);
  const size_t extensions = hello.BeginLength(2);
  write_extensions(hello);
  hello.EndLength(extensions, 2);
  hello.EndLength(body, 3);
  return hello.Take();
}

// ServerHello choosing TLS 1.3, TLS_AES_128_GCM_SHA256 and X25519. Unlike the client's,
// the server's supported_versions and key_share carry a single value, not a list.
Bytes ServerHelloMessage(std::span<const uint8_t> session_id, Rng& rng) {
  ByteWriter hello;
  hello.U8(kHandshakeServerHello);
  const size_t body = hello.BeginLength(3);
  hello.U16(kLegacyVersionTls12);
  hello.Append(rng.RandomBytes(32));  // server random
  hello.U8(static_cast<uint8_t>(session_id.size()));
  hello.Append(session_id);
  hello.U16(kTlsAes128GcmSha256);
  hello.U8(0);  // compression: null
  const size_t extensions = hello.BeginLength(2);
  Extension(hello, 0x002b, [&] { hello.U16(0x0304); });
  Extension(hello, 0x0033, [&] {
    hello.U16(kGroupX25519);
    hello.U16(32);
    hello.Append(rng.RandomBytes(32));
  });
  hello.EndLength(extensions, 2);
  hello.EndLength(body, 3);
  return hello.Take();
}

void WriteRecord(ByteWriter& w, uint8_t content_type, uint16_t version,
                 std::span<const uint8_t> fragment) {
  w.U8(content_type);
  w.U16(version);
  w.U16(static_cast<uint16_t>(fragment.size()));
  w.Append(fragment);
}

// An encrypted TLS 1.3 record: always typed application_data on the wire.
void WriteEncryptedRecord(ByteWriter& w, size_t plaintext_size, Rng& rng) {
  WriteRecord(w, kContentApplicationData, kLegacyVersionTls12,
              rng.RandomBytes(plaintext_size + kAeadOverhead));
}

void WriteChangeCipherSpec(ByteWriter& w) {
  const uint8_t change_cipher_spec[] = {1};
  WriteRecord(w, kContentChangeCipherSpec, kLegacyVersionTls12, change_cipher_spec);
}

}  // namespace

Bytes TlsClientHello(std::string_view server_name, std::span<const uint8_t> session_id, Rng& rng) {
  const Bytes hello = ClientHelloMessage(session_id, kFirefoxCipherSuites, rng, [&](ByteWriter& w) {
    FirefoxExtensions(w, server_name, rng);
  });
  ByteWriter record;
  WriteRecord(record, kContentHandshake, kRecordVersionTls10, hello);
  return record.Take();
}

Bytes TlsServerFirstFlight(std::span<const uint8_t> session_id, Rng& rng) {
  ByteWriter flight;
  WriteRecord(flight, kContentHandshake, kLegacyVersionTls12, ServerHelloMessage(session_id, rng));
  WriteChangeCipherSpec(flight);
  // EncryptedExtensions, Certificate (a chain of two), CertificateVerify, Finished.
  WriteEncryptedRecord(flight, rng.Between(2400, 4600), rng);
  return flight.Take();
}

Bytes TlsClientFinished(Rng& rng) {
  ByteWriter w;
  WriteChangeCipherSpec(w);
  WriteEncryptedRecord(w, 36, rng);  // Finished: 4-byte header + 32-byte verify_data
  return w.Take();
}

Bytes TlsApplicationData(size_t plaintext_size, Rng& rng) {
  ByteWriter w;
  while (plaintext_size > 0) {
    const size_t chunk = std::min(plaintext_size, kMaxRecordPlaintext);
    WriteEncryptedRecord(w, chunk, rng);
    plaintext_size -= chunk;
  }
  return w.Take();
}

Bytes TlsCloseNotify(Rng& rng) {
  ByteWriter w;
  // The 2-byte alert; its real content type (alert) is hidden inside the encryption.
  WriteEncryptedRecord(w, 2, rng);
  return w.Take();
}

Bytes QuicTlsClientHello(std::string_view server_name,
                         std::span<const uint8_t> transport_parameters, Rng& rng) {
  // QUIC has no middlebox compatibility mode: the legacy session ID is empty.
  return ClientHelloMessage({}, kChromeQuicCipherSuites, rng, [&](ByteWriter& w) {
    ChromeQuicExtensions(w, server_name, transport_parameters, rng);
  });
}

Bytes QuicTlsServerHello(Rng& rng) { return ServerHelloMessage({}, rng); }

}  // namespace flowgate::trafficgen
