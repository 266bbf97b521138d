// The generator's only source of randomness. std::mt19937 is portable but the standard
// distributions are not (libstdc++ and libc++ map the same engine output to different
// values), so a capture would differ between toolchains for the same seed. This
// SplitMix64 engine and its helpers are fully specified here, so a seed always yields the
// same bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace flowgate::trafficgen {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) for n > 0. The modulo bias is below 2^-40 for the ranges used here.
  uint64_t Below(uint64_t n) { return Next() % n; }
  // Uniform in [lo, hi], inclusive.
  uint64_t Between(uint64_t lo, uint64_t hi) { return lo + Below(hi - lo + 1); }
  uint8_t Byte() { return static_cast<uint8_t>(Next() & 0xff); }
  uint16_t U16() { return static_cast<uint16_t>(Next() & 0xffff); }
  uint32_t U32() { return static_cast<uint32_t>(Next() & 0xffffffff); }
  // Stands in for ciphertext, keys and nonces: all of them look uniformly random on the wire.
  std::vector<uint8_t> RandomBytes(size_t count) {
    std::vector<uint8_t> out(count);
    for (uint8_t& b : out) b = Byte();
    return out;
  }
  template <typename T>
  const T& Pick(std::span<const T> items) {
    return items[Below(items.size())];
  }
  template <typename T>
  void Shuffle(std::span<T> items) {  // Fisher-Yates
    for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[Below(i)]);
  }

 private:
  uint64_t state_;
};

}  // namespace flowgate::trafficgen
