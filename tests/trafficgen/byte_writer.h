// Big-endian (network order) serialisation into a growable byte buffer, with
// length-prefixed blocks that are patched once their content is known. Every protocol
// payload the generator builds (DNS, TLS, SSH, NTP) nests such length fields, and getting
// one wrong makes nDPI call the packet malformed, so they are computed, never hand-typed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace flowgate::trafficgen {

using Bytes = std::vector<uint8_t>;

class ByteWriter {
 public:
  void U8(uint8_t v) { bytes_.push_back(v); }
  void U16(uint16_t v) { PutBigEndian(v, 2); }
  void U24(uint32_t v) { PutBigEndian(v, 3); }
  void U32(uint32_t v) { PutBigEndian(v, 4); }
  void U64(uint64_t v) { PutBigEndian(v, 8); }
  void Append(std::span<const uint8_t> data) {
    bytes_.insert(bytes_.end(), data.begin(), data.end());
  }
  void Append(std::string_view text) { bytes_.insert(bytes_.end(), text.begin(), text.end()); }
  void Fill(size_t count, uint8_t value) { bytes_.insert(bytes_.end(), count, value); }

  // Reserves a `width`-byte length field and returns a handle for EndLength().
  size_t BeginLength(size_t width) {
    const size_t at = bytes_.size();
    bytes_.insert(bytes_.end(), width, 0);
    return at;
  }
  // Writes into the field reserved at `at` the number of bytes appended after it.
  void EndLength(size_t at, size_t width) {
    uint64_t length = bytes_.size() - at - width;
    for (size_t i = width; i-- > 0;) {
      bytes_[at + i] = static_cast<uint8_t>(length & 0xff);
      length >>= 8;
    }
  }

  size_t size() const { return bytes_.size(); }
  const Bytes& bytes() const { return bytes_; }
  Bytes Take() { return std::move(bytes_); }

 private:
  void PutBigEndian(uint64_t v, size_t width) {
    for (size_t i = width; i-- > 0;) bytes_.push_back(static_cast<uint8_t>((v >> (8 * i)) & 0xff));
  }

  Bytes bytes_;
};

}  // namespace flowgate::trafficgen
