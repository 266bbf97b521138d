#include "flowgate/common/utf8.h"

#include <algorithm>
#include <cstdint>

namespace flowgate {

size_t Utf8SequenceLength(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = byte(i);
  size_t length;
  uint32_t min_code;
  uint32_t code;
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0) {
    length = 2, min_code = 0x80, code = c & 0x1f;
  } else if ((c & 0xf0) == 0xe0) {
    length = 3, min_code = 0x800, code = c & 0x0f;
  } else if ((c & 0xf8) == 0xf0) {
    length = 4, min_code = 0x10000, code = c & 0x07;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
    code = (code << 6) | (byte(i + k) & 0x3f);
  }
  if (code < min_code || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return 0;
  return length;
}

namespace {

bool IsAscii(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

}  // namespace

bool IsValidUtf8(std::string_view text) {
  if (IsAscii(text)) return true;  // nearly all of it, checked without decoding
  for (size_t i = 0; i < text.size();) {
    const size_t length = Utf8SequenceLength(text, i);
    if (length == 0) return false;
    i += length;
  }
  return true;
}

std::string ValidUtf8(std::string_view text) {
  std::string out;
  AssignValidUtf8(text, &out);
  return out;
}

void AssignValidUtf8(std::string_view text, std::string* out) {
  if (IsValidUtf8(text)) {
    out->assign(text);
    return;
  }
  out->clear();
  out->reserve(text.size() + 8);
  for (size_t i = 0; i < text.size();) {
    const size_t length = Utf8SequenceLength(text, i);
    if (length == 0) {
      *out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
      ++i;
    } else {
      out->append(text.substr(i, length));
      i += length;
    }
  }
}

}  // namespace flowgate
