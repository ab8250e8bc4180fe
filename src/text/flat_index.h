// Open-addressing hash tables of the tokenizer's hot lookups, built once at load and read-only afterwards:
//  - BytesIndex: byte string -> id over the vocabulary (about 128k entries for Llama-3). Short keys are stored in
//    the 16-byte slot itself, so a lookup touches one slot line, where std::unordered_map walks a chain of
//    separately allocated nodes (measured: the vocabulary lookup was a third of encoding time with it).
//  - PairIndex: (left id, right id) -> (merge rank, merged id), 16-byte slots.
// Linear probing, load factor at most 1/2, capacity a power of two.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace nvrar::text {

// A fast hash of short byte strings (multiply-xorshift over 8-byte words); not for untrusted keys in general, but
// the table's keys are the file's vocabulary and lookups only read.
inline uint64_t hash_bytes(std::string_view s) {
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;
  uint64_t h = 0x2545F4914F6CDD1Dull ^ (s.size() * kMul);
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * kMul;
    h ^= h >> 32;
  }
  if (i < s.size()) {
    uint64_t w = 0;
    std::memcpy(&w, s.data() + i, s.size() - i);
    h = (h ^ w) * kMul;
    h ^= h >> 32;
  }
  h *= kMul;
  return h ^ (h >> 29);
}

inline std::size_t table_capacity(std::size_t entries) {
  std::size_t capacity = 16;
  while (capacity < 2 * entries) capacity *= 2;
  return capacity;
}

class BytesIndex {
 public:
  // Indexes every non-empty keys[id]; `keys` must outlive the index. A key present twice keeps its first id.
  void build(const std::vector<std::string>* keys) {
    keys_ = keys;
    std::size_t entries = 0;
    for (const auto& k : *keys) entries += !k.empty();
    slots_.assign(table_capacity(entries), Slot{});
    mask_ = slots_.size() - 1;
    for (std::size_t id = 0; id < keys->size(); ++id)
      if (!(*keys)[id].empty() && find((*keys)[id]) < 0) insert((*keys)[id], static_cast<int32_t>(id));
  }
  // The id of `key`, or -1.
  int32_t find(std::string_view key) const {
    const Slot probe = slot_of(key, -1);
    for (std::size_t i = hash_bytes(key) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.id < 0) return -1;
      if (std::memcmp(s.key, probe.key, sizeof probe.key) == 0 &&
          (key.size() <= kInlineBytes || (*keys_)[s.id] == key))
        return s.id;
    }
  }

 private:
  // Keys of up to 11 bytes live in the slot itself (almost every piece of prose: one cache miss per lookup); longer
  // ones keep their first 11 bytes there and are confirmed against keys_. The last byte holds the length (capped).
  static constexpr std::size_t kInlineBytes = 11;
  struct Slot {
    char key[kInlineBytes + 1] = {};
    int32_t id = -1;
  };
  static Slot slot_of(std::string_view key, int32_t id) {
    Slot s;
    std::memcpy(s.key, key.data(), key.size() < kInlineBytes ? key.size() : kInlineBytes);
    s.key[kInlineBytes] = static_cast<char>(key.size() < 255 ? key.size() : 255);
    s.id = id;
    return s;
  }
  void insert(std::string_view key, int32_t id) {
    std::size_t i = hash_bytes(key) & mask_;
    while (slots_[i].id >= 0) i = (i + 1) & mask_;
    slots_[i] = slot_of(key, id);
  }
  const std::vector<std::string>* keys_ = nullptr;
  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
};

class PairIndex {
 public:
  struct Value {
    int32_t rank;
    int32_t merged_id;
  };
  // Entries: (key, value) with key = left << 32 | right; a key present twice keeps its last value (HF's rule).
  void build(const std::vector<std::pair<uint64_t, Value>>& entries) {
    slots_.assign(table_capacity(entries.size()), Slot{kEmpty, {}});
    mask_ = slots_.size() - 1;
    for (const auto& [key, value] : entries) {
      std::size_t i = mix(key) & mask_;
      while (slots_[i].key != kEmpty && slots_[i].key != key) i = (i + 1) & mask_;
      slots_[i] = Slot{key, value};
    }
  }
  const Value* find(uint64_t key) const {
    for (std::size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.value;
      if (s.key == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~0ull;  // no pair of valid ids (below 2^24) has it
  struct Slot {
    uint64_t key;
    Value value;
  };
  static uint64_t mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xFF51AFD7ED558CCDull;
    return k ^ (k >> 33);
  }
  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
};

}  // namespace nvrar::text
