#include "json_writer.h"

#include "flowgate/common/utf8.h"

#include <bit>
#include <cmath>

namespace flowgate {

void JsonWriter::Grow(size_t bytes) {
  const size_t used = static_cast<size_t>(pos_ - buffer_.data());
  buffer_.resize(std::max(buffer_.size() * 2, used + bytes));
  pos_ = buffer_.data() + used;
  end_ = buffer_.data() + buffer_.size();
}

void JsonWriter::Double(double value) {
  Reserve(34);
  Separate();
  need_comma_ = true;
  if (!std::isfinite(value)) {
    std::memcpy(pos_, "null", 4);  // JSON has no NaN or infinity
    pos_ += 4;
    return;
  }
  char* const start = pos_;
  pos_ = std::to_chars(pos_, pos_ + 32, value).ptr;
  if (std::string_view(start, static_cast<size_t>(pos_ - start)).find_first_of(".e") ==
      std::string_view::npos) {
    std::memcpy(pos_, ".0", 2);
    pos_ += 2;
  }
}

namespace {

constexpr bool IsPlain(unsigned char c) { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\'; }

// Length of the leading run of bytes that go out as they are (printable ASCII other than
// '"' and '\\'). Eight bytes per step: a byte needs attention when it is below 0x20, equals
// '"' or '\\', or has its top bit set; the subtractions below set a byte's top bit in each
// of those cases. A borrow can only come from a lower byte that is itself flagged, so the
// lowest flagged byte is always a real one.
size_t PlainPrefixLength(const char* text, size_t size) {
  static_assert(std::endian::native == std::endian::little, "the scan finds bytes by bit order");
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kTops = 0x8080808080808080ULL;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t x;
    std::memcpy(&x, text + i, 8);
    const uint64_t flagged =
        ((x - kOnes * 0x20) | ((x ^ (kOnes * '"')) - kOnes) | ((x ^ (kOnes * '\\')) - kOnes) | x) &
        kTops;
    if (flagged != 0) return i + static_cast<size_t>(std::countr_zero(flagged) / 8);
  }
  while (i < size && IsPlain(static_cast<unsigned char>(text[i]))) ++i;
  return i;
}

}  // namespace

void JsonWriter::AppendQuoted(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  const auto put = [this](std::string_view bytes) {
    std::memcpy(pos_, bytes.data(), bytes.size());
    pos_ += bytes.size();
  };
  *pos_++ = '"';
  size_t i = 0;
  while (true) {
    // Most of what flows through here is plain ASCII: copy each run in one go.
    const size_t run = PlainPrefixLength(text.data() + i, text.size() - i);
    put(text.substr(i, run));
    i += run;
    if (i == text.size()) break;
    const unsigned char c = static_cast<unsigned char>(text[i]);
    switch (c) {
      case '"':
        put("\\\"");
        ++i;
        continue;
      case '\\':
        put("\\\\");
        ++i;
        continue;
      case '\n':
        put("\\n");
        ++i;
        continue;
      case '\r':
        put("\\r");
        ++i;
        continue;
      case '\t':
        put("\\t");
        ++i;
        continue;
      default:
        break;
    }
    if (c < 0x20) {
      put("\\u00");
      *pos_++ = kHex[c >> 4];
      *pos_++ = kHex[c & 0xf];
      ++i;
      continue;
    }
    const size_t length = Utf8SequenceLength(text, i);
    if (length == 0) {
      put("\xEF\xBF\xBD");  // U+FFFD REPLACEMENT CHARACTER, one per bad byte
      ++i;
    } else {
      put(text.substr(i, length));
      i += length;
    }
  }
  *pos_++ = '"';
}

}  // namespace flowgate
