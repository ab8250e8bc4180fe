// Byte-level BPE merging (bpe.h).
//
// Merges are kept as (left id, right id) -> (rank, merged id); the rank is the line of the merge in the file. The
// short-piece path rescans all adjacent pairs after each merge (pieces are mostly a few bytes, where this beats any
// bookkeeping). The long-piece path (long CJK runs, digits-free symbol runs, whitespace) keeps the symbols in a
// doubly linked list and candidate merges in a min-heap ordered by (rank, position), and skips candidates made
// stale by an earlier merge: O(n log n).
#include "text/bpe.h"

#include <queue>

#include "core/json_input.h"
#include "text/utf8.h"

namespace nvrar::text {

namespace ji = nvrar::json_input;

namespace {
// Pieces up to this many symbols take the rescanning path (measured on English prose and code: the crossover of
// the two paths lies between 16 and 48 symbols).
constexpr std::size_t kShortPieceSymbols = 24;
}  // namespace

std::unique_ptr<BpeModel> BpeModel::from_json(const nlohmann::json& model, const std::string& where) {
  if (!model.is_object()) ji::fail_field(where, "model", "expected an object, got " + ji::describe(model));
  const auto type = model.find("type");
  if (type != model.end() && ji::to_string(*type, where, "model.type") != "BPE")
    ji::fail_field(where, "model.type",
                   "'" + ji::excerpt(type->get<std::string>()) + "' is not supported (byte-level BPE only)");
  // Options of other BPE flavours (SentencePiece-style, WordPiece-style suffixes, dropout) are refused, not ignored.
  for (const char* name : {"dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix"})
    if (model.contains(name) && !model[name].is_null())
      ji::fail_field(where, std::string("model.") + name, "is set; only null is supported (byte-level BPE)");
  if (model.contains("byte_fallback") && ji::to_bool(model["byte_fallback"], where, "model.byte_fallback"))
    ji::fail_field(where, "model.byte_fallback", "true is not supported (byte-level BPE needs no fallback)");

  std::unique_ptr<BpeModel> owned(new BpeModel);
  BpeModel& result = *owned;
  if (model.contains("ignore_merges"))
    result.ignore_merges_ = ji::to_bool(model["ignore_merges"], where, "model.ignore_merges");

  const auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object())
    ji::fail_field(where, "model.vocab", "expected an object of token -> id");
  BytesToId by_bytes;  // for loading only
  by_bytes.reserve(vocab->size());
  for (const auto& [spelling, id_value] : vocab->items()) {
    const std::string field = "model.vocab['" + ji::excerpt(spelling) + "']";
    const auto id = ji::to_integer<int32_t>(id_value, where, field, 0, (1 << 24) - 1);
    if (static_cast<std::size_t>(id) >= result.id_bytes_.size()) result.id_bytes_.resize(id + 1);
    if (!result.id_bytes_[id].empty()) ji::fail_field(where, field, "id " + std::to_string(id) + " is used twice");
    std::string bytes = utf8::spelling_to_bytes(spelling);
    if (bytes.empty()) ji::fail_field(where, field, "an empty token");
    result.id_bytes_[id] = bytes;
    by_bytes.emplace(std::move(bytes), id);
  }
  result.vocab_.build(&result.id_bytes_);
  for (int b = 0; b < 256; ++b) {
    const char byte = static_cast<char>(b);
    const auto it = by_bytes.find(std::string_view(&byte, 1));
    if (it == by_bytes.end())
      ji::fail_field(where, "model.vocab",
                     "no token for byte " + std::to_string(b) + " ('" +
                         utf8::bytes_to_spelling(std::string(1, static_cast<char>(b))) +
                         "'): not a byte-level vocabulary");
    result.byte_ids_[b] = it->second;
  }

  const auto merges = model.find("merges");
  if (merges == model.end() || !merges->is_array()) ji::fail_field(where, "model.merges", "expected an array");
  std::vector<std::pair<uint64_t, Merge>> pairs;
  pairs.reserve(merges->size());
  for (std::size_t rank = 0; rank < merges->size(); ++rank) {
    const nlohmann::json& m = (*merges)[rank];
    const std::string field = "model.merges[" + std::to_string(rank) + "]";
    std::string left, right;
    if (m.is_string()) {  // "left right" (the older format)
      const std::string& text = m.get_ref<const std::string&>();
      const std::size_t space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos)
        ji::fail_field(where, field, "expected \"left right\", got '" + ji::excerpt(text) + "'");
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else if (m.is_array() && m.size() == 2) {  // ["left", "right"]
      left = ji::to_string(m[0], where, field + "[0]");
      right = ji::to_string(m[1], where, field + "[1]");
    } else {
      ji::fail_field(where, field, "expected \"left right\" or [left, right], got " + ji::describe(m));
    }
    const std::string left_bytes = utf8::spelling_to_bytes(left), right_bytes = utf8::spelling_to_bytes(right);
    const auto l = by_bytes.find(left_bytes), r = by_bytes.find(right_bytes),
               merged = by_bytes.find(left_bytes + right_bytes);
    if (l == by_bytes.end() || r == by_bytes.end() || merged == by_bytes.end())
      ji::fail_field(where, field, "'" + ji::excerpt(left) + "', '" + ji::excerpt(right) +
                                       "' or their concatenation is not in model.vocab");
    // A pair listed twice takes its last rank, as HF's map of merges does (PairIndex keeps the last).
    pairs.push_back({pair_key(l->second, r->second), Merge{static_cast<int32_t>(rank), merged->second}});
  }
  result.merges_.build(pairs);
  return owned;
}

const BpeModel::Merge* BpeModel::find_merge(int32_t left, int32_t right) const {
  return merges_.find(pair_key(left, right));
}

void BpeModel::merge_short(std::vector<int32_t>& symbols) const {
  while (symbols.size() > 1) {
    std::size_t best = 0;
    const Merge* best_merge = nullptr;
    for (std::size_t i = 0; i + 1 < symbols.size(); ++i) {
      const Merge* m = find_merge(symbols[i], symbols[i + 1]);
      if (m && (!best_merge || m->rank < best_merge->rank)) {
        best_merge = m;
        best = i;
      }
    }
    if (!best_merge) return;
    symbols[best] = best_merge->merged_id;
    symbols.erase(symbols.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
}

void BpeModel::merge_long(std::vector<int32_t>& symbols) const {
  const int n = static_cast<int>(symbols.size());
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank;
    int position;  // left symbol
    int32_t left, right;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : position > o.position; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto push = [&](int position) {
    if (position < 0 || next[position] < 0) return;
    const int32_t left = symbols[position], right = symbols[next[position]];
    if (const Merge* m = find_merge(left, right)) heap.push({m->rank, position, left, right});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  std::vector<bool> alive(n, true);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    // Stale when either symbol has been merged away or changed since the candidate was pushed.
    if (!alive[c.position] || symbols[c.position] != c.left || next[c.position] < 0 ||
        symbols[next[c.position]] != c.right)
      continue;
    const int right = next[c.position];
    symbols[c.position] = find_merge(c.left, c.right)->merged_id;
    alive[right] = false;
    next[c.position] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.position;
    push(prev[c.position]);
    push(c.position);
  }
  std::vector<int32_t> merged;
  for (int i = 0; i >= 0; i = next[i]) merged.push_back(symbols[i]);
  symbols.swap(merged);
}

void BpeModel::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    if (const int32_t id = vocab_.find(piece); id >= 0) {
      out.push_back(id);
      return;
    }
  }
  if (piece.size() == 1) {
    out.push_back(byte_ids_[static_cast<unsigned char>(piece[0])]);
    return;
  }
  const bool cacheable = piece.size() <= kCacheMaxPieceBytes;
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (const auto it = cache_.find(piece); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> symbols;
  symbols.reserve(piece.size());
  for (const char c : piece) symbols.push_back(byte_ids_[static_cast<unsigned char>(c)]);
  if (symbols.size() <= kShortPieceSymbols)
    merge_short(symbols);
  else
    merge_long(symbols);
  out.insert(out.end(), symbols.begin(), symbols.end());
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() >= kCacheEntries) cache_.clear();
    cache_.emplace(std::string(piece), std::move(symbols));
  }
}

}  // namespace nvrar::text
