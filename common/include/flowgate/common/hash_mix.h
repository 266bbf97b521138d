// One step of a fast, non-cryptographic 64-bit hash: xor a word in, multiply by the
// golden-ratio constant, fold the high half down. For hash tables and fingerprints that
// live in one process (words loaded with memcpy hash differently on hosts of the other
// byte order).
#pragma once

#include <cstdint>

namespace flowgate {

inline constexpr uint64_t kHashMultiplier = 0x9e3779b97f4a7c15ULL;

constexpr uint64_t MixHash(uint64_t hash, uint64_t word) {
  hash = (hash ^ word) * kHashMultiplier;
  return hash ^ (hash >> 32);
}

}  // namespace flowgate
