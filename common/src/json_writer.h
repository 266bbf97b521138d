// A streaming writer of compact JSON, the fast path behind the netifyd encoder: no DOM,
// no allocation beyond the output string. Callers write an object's keys in sorted order
// (netifyd's keys come out sorted); debug builds check that they do.
#pragma once

#include <cassert>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace flowgate {

class JsonWriter {
 public:
  explicit JsonWriter(std::string* out) : out_(*out) {}

  void BeginObject() { Open('{'); }
  void EndObject() { Close('}'); }
  void BeginArray() { Open('['); }
  void EndArray() { Close(']'); }

  // Starts a member of the current object. REQUIRED: keys of one object ascend.
  void Key(std::string_view key) {
    Separate();
#ifndef NDEBUG
    assert(last_keys_.back().empty() || last_keys_.back() < key);
    last_keys_.back() = std::string(key);
#endif
    AppendString(key);
    out_ += ':';
    after_key_ = true;
  }

  void String(std::string_view value) {
    Separate();
    AppendString(value);
  }
  void Uint(uint64_t value);
  void Int(int64_t value);
  // Always written with a decimal point or exponent, so the field stays a float for
  // readers that care about types.
  void Double(double value);
  void Bool(bool value) {
    Separate();
    out_ += value ? "true" : "false";
  }

  // Key + value shorthands.
  void Field(std::string_view key, std::string_view value) { Key(key), String(value); }
  void Field(std::string_view key, const char* value) { Key(key), String(value); }
  void Field(std::string_view key, uint64_t value) { Key(key), Uint(value); }
  void Field(std::string_view key, uint32_t value) { Key(key), Uint(value); }
  void Field(std::string_view key, int64_t value) { Key(key), Int(value); }
  void Field(std::string_view key, double value) { Key(key), Double(value); }
  void Field(std::string_view key, bool value) { Key(key), Bool(value); }
  // netifyd omits empty strings rather than sending "".
  void FieldIfNotEmpty(std::string_view key, std::string_view value) {
    if (!value.empty()) Field(key, value);
  }

 private:
  void Open(char bracket) {
    Separate();
    out_ += bracket;
    first_.push_back(true);
#ifndef NDEBUG
    last_keys_.emplace_back();
#endif
  }
  void Close(char bracket) {
    out_ += bracket;
    first_.pop_back();
#ifndef NDEBUG
    last_keys_.pop_back();
#endif
  }
  // Writes the comma between values, except right after a key or at a container's start.
  void Separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (first_.empty()) return;
    if (!first_.back()) out_ += ',';
    first_.back() = false;
  }
  // Quotes and escapes; invalid UTF-8 becomes U+FFFD.
  void AppendString(std::string_view text);

  std::string& out_;
  std::vector<bool> first_;
  bool after_key_ = false;
#ifndef NDEBUG
  std::vector<std::string> last_keys_;
#endif
};

}  // namespace flowgate
