// A streaming writer of compact JSON, the fast path behind the netifyd encoder: no DOM, and
// no allocation once its buffer has grown to the largest message. Callers write an object's
// keys in sorted order (netifyd's keys come out sorted); debug builds check that they do.
//
// Speed comes from three things: keys known at compile time (JsonKey) are copied without
// escaping, every value reserves its worst case once and then writes through a raw pointer,
// and strings are scanned for bytes needing escapes eight at a time.
#pragma once

#include <cassert>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace flowgate {

// An object key fixed at compile time. It must need no escaping (checked at compile time:
// a key with a quote, backslash, control or non-ASCII byte does not compile).
class JsonKey {
 public:
  template <size_t N>
  consteval JsonKey(const char (&text)[N])  // NOLINT(google-explicit-constructor): literals
      : text_(text), size_(N - 1) {
    for (size_t i = 0; i + 1 < N; ++i) {
      const auto c = static_cast<unsigned char>(text[i]);
      if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') throw "JSON key needs escaping";
    }
  }
  const char* data() const { return text_; }
  size_t size() const { return size_; }

 private:
  const char* text_;
  size_t size_;
};

class JsonWriter {
 public:
  // Writes into *buffer from byte `offset` on. The writer uses buffer->size() as room to
  // write in and grows it as needed, so the bytes after end_offset() are scratch: the
  // output is [offset, end_offset()). Reusing one buffer for many messages avoids both
  // allocation and the zero-filling of growth.
  JsonWriter(std::string* buffer, size_t offset) : buffer_(*buffer) {
    if (buffer_.size() < offset + kMinRoom) buffer_.resize(offset + kMinRoom);
    pos_ = buffer_.data() + offset;
    end_ = buffer_.data() + buffer_.size();
  }
  JsonWriter(const JsonWriter&) = delete;
  JsonWriter& operator=(const JsonWriter&) = delete;

  // Where the output ends in the buffer.
  size_t end_offset() const { return static_cast<size_t>(pos_ - buffer_.data()); }

  void BeginObject() { Open('{'); }
  void EndObject() { Close('}'); }
  void BeginArray() { Open('['); }
  void EndArray() { Close(']'); }

  // Starts a member of the current object. REQUIRED: keys of one object ascend.
  void Key(JsonKey key) {
    CheckKeyOrder(std::string_view(key.data(), key.size()));
    Reserve(key.size() + 4);
    Separate();
    *pos_++ = '"';
    std::memcpy(pos_, key.data(), key.size());
    pos_ += key.size();
    *pos_++ = '"';
    *pos_++ = ':';
    need_comma_ = false;
  }
  // A key known only at run time (an interface name, a MAC): escaped like any string.
  void DynamicKey(std::string_view key) {
    CheckKeyOrder(key);
    String(key);
    Reserve(1);
    *pos_++ = ':';
    need_comma_ = false;
  }

  void String(std::string_view value) {
    // Worst case: every byte becomes a six-byte \u00XX escape; plus quotes and comma.
    Reserve(6 * value.size() + 3);
    Separate();
    AppendQuoted(value);
    need_comma_ = true;
  }
  void Uint(uint64_t value) {
    Reserve(21);
    Separate();
    pos_ = std::to_chars(pos_, pos_ + 20, value).ptr;
    need_comma_ = true;
  }
  void Int(int64_t value) {
    Reserve(21);
    Separate();
    pos_ = std::to_chars(pos_, pos_ + 20, value).ptr;
    need_comma_ = true;
  }
  // Always written with a decimal point or exponent, so the field stays a float for
  // readers that care about types.
  void Double(double value);
  void Bool(bool value) {
    Reserve(6);
    Separate();
    if (value) {
      std::memcpy(pos_, "true", 4);
      pos_ += 4;
    } else {
      std::memcpy(pos_, "false", 5);
      pos_ += 5;
    }
    need_comma_ = true;
  }
  // Bytes outside any JSON value (the newline that ends a netifyd payload).
  void Raw(char c) {
    Reserve(1);
    *pos_++ = c;
  }

  // Key + value shorthands.
  void Field(JsonKey key, std::string_view value) { Key(key), String(value); }
  void Field(JsonKey key, const char* value) { Key(key), String(value); }
  void Field(JsonKey key, uint64_t value) { Key(key), Uint(value); }
  void Field(JsonKey key, uint32_t value) { Key(key), Uint(value); }
  void Field(JsonKey key, int64_t value) { Key(key), Int(value); }
  void Field(JsonKey key, double value) { Key(key), Double(value); }
  void Field(JsonKey key, bool value) { Key(key), Bool(value); }
  // netifyd omits empty strings rather than sending "".
  void FieldIfNotEmpty(JsonKey key, std::string_view value) {
    if (!value.empty()) Field(key, value);
  }

 private:
  static constexpr size_t kMinRoom = 1024;

  void Open(char bracket) {
    Reserve(2);
    Separate();
    *pos_++ = bracket;
    need_comma_ = false;
#ifndef NDEBUG
    last_keys_.emplace_back();
#endif
  }
  void Close(char bracket) {
    Reserve(1);
    *pos_++ = bracket;
    need_comma_ = true;
#ifndef NDEBUG
    last_keys_.pop_back();
#endif
  }
  // The comma between values: one flag is enough, because a value is followed by a comma
  // exactly when another value or key follows in the same container.
  void Separate() {
    if (need_comma_) *pos_++ = ',';
  }
  void Reserve(size_t bytes) {
    if (static_cast<size_t>(end_ - pos_) < bytes) Grow(bytes);
  }
  void Grow(size_t bytes);
  // Quotes and escapes `text`; invalid UTF-8 becomes U+FFFD. REQUIRED: room reserved.
  void AppendQuoted(std::string_view text);

  void CheckKeyOrder([[maybe_unused]] std::string_view key) {
#ifndef NDEBUG
    assert(!last_keys_.empty() && (last_keys_.back().empty() || last_keys_.back() < key));
    last_keys_.back() = std::string(key);
#endif
  }

  std::string& buffer_;
  char* pos_ = nullptr;
  char* end_ = nullptr;
  bool need_comma_ = false;
#ifndef NDEBUG
  std::vector<std::string> last_keys_;
#endif
};

}  // namespace flowgate
