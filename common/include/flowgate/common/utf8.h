// UTF-8 checks for text that comes from outside: packets, file names, flags. Events are
// proto3 messages, whose string fields must hold valid UTF-8 (a parser refuses the whole
// message otherwise), and the netifyd JSON stream must be valid UTF-8 for jq.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace flowgate {

// Length of the valid UTF-8 sequence starting at text[i], or 0 if it is not valid
// (overlong forms, surrogates and code points past U+10FFFF are invalid).
// REQUIRES: i < text.size().
size_t Utf8SequenceLength(std::string_view text, size_t i);

bool IsValidUtf8(std::string_view text);

// `text` with every byte that does not start a valid sequence replaced by U+FFFD, one per
// bad byte (as the JSON stream writes them).
std::string ValidUtf8(std::string_view text);
// The same into *out, replacing its text but keeping its buffer (for per-event paths).
// REQUIRES: `text` does not point into *out.
void AssignValidUtf8(std::string_view text, std::string* out);

}  // namespace flowgate
