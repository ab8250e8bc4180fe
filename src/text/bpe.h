// The byte-level BPE model of a tokenizer.json ("model": {"type": "BPE", ...}), on raw bytes: the vocabulary's
// spellings are turned back into bytes at load (utf8::spelling_to_bytes), so encoding needs no per-text mapping.
// A piece is encoded by
//  1. ignore_merges (Llama-3): a piece that is a vocabulary entry is that one id;
//  2. a cache of pieces already merged (bounded; cleared when full);
//  3. merging: start from one id per byte, repeatedly merge the adjacent pair of lowest rank (leftmost on ties) until
//     no pair has a merge; a linear scan for short pieces, a heap over a linked list of symbols for long ones.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "text/flat_index.h"

namespace nvrar::text {

// std::string keys looked up by std::string_view without a copy.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using BytesToId = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  // Reads the "model" value; `where` names the file in errors (field 'model.<name>').
  static std::unique_ptr<BpeModel> from_json(const nlohmann::json& model, const std::string& where);

  // Appends the ids of one pre-tokenized piece (raw bytes, non-empty).
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;

  int32_t find_bytes(std::string_view bytes) const { return vocab_.find(bytes); }  // raw bytes -> id, or -1
  // id -> raw bytes ("" for ids the model does not define).
  const std::vector<std::string>& id_bytes() const { return id_bytes_; }

  BpeModel(const BpeModel&) = delete;
  BpeModel& operator=(const BpeModel&) = delete;

 private:
  BpeModel() = default;
  using Merge = PairIndex::Value;
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  const Merge* find_merge(int32_t left, int32_t right) const;
  void merge_short(std::vector<int32_t>& symbols) const;
  void merge_long(std::vector<int32_t>& symbols) const;

  std::vector<std::string> id_bytes_;
  BytesIndex vocab_;  // over id_bytes_
  int32_t byte_ids_[256] = {};
  PairIndex merges_;
  bool ignore_merges_ = false;

  // Pieces merged before (thread-safe; bounded).
  static constexpr std::size_t kCacheEntries = 1 << 16;
  static constexpr std::size_t kCacheMaxPieceBytes = 256;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace nvrar::text
