// FNV-1a (64-bit) over 64-bit words taken as their 8 little-endian bytes: the hashes ranks compare to agree on a
// call's or a setup's parameters.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>

namespace nvrar::core {

inline uint64_t fnv1a64_words(std::span<const uint64_t> words) {
  uint64_t h = 14695981039346656037ULL;
  for (uint64_t word : words)
    for (int i = 0; i < 8; ++i) {
      h ^= (word >> (8 * i)) & 0xff;
      h *= 1099511628211ULL;
    }
  return h;
}
inline uint64_t fnv1a64_words(std::initializer_list<uint64_t> words) {
  return fnv1a64_words(std::span<const uint64_t>(words.begin(), words.size()));
}

}  // namespace nvrar::core
