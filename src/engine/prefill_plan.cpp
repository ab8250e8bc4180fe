// Chunked prefill plan (prefill_plan.h).
#include "engine/prefill_plan.h"

#include <algorithm>

#include <fmt/format.h>

#include "nvrar/types.h"

namespace nvrar::engine {

std::vector<PrefillChunk> plan_prefill(const std::vector<std::vector<int32_t>>& prompts, int64_t chunk_tokens,
                                       int tile_rows, int64_t group_keys) {
  if (prompts.empty()) throw Error("nvrar-llm: prefill: no prompts");
  if (chunk_tokens < 1 || tile_rows < 1)
    throw Error(fmt::format("nvrar-llm: prefill: chunk of {} tokens, tiles of {} rows (both must be >= 1)",
                            chunk_tokens, tile_rows));
  if (group_keys < 0) throw Error(fmt::format("nvrar-llm: prefill: groups of {} keys (must be >= 0)", group_keys));
  for (std::size_t b = 0; b < prompts.size(); ++b)
    if (prompts[b].empty()) throw Error(fmt::format("nvrar-llm: prefill: prompt {} is empty", b));
  std::vector<PrefillChunk> chunks;
  std::size_t b = 0;
  int64_t pos = 0;  // next position of sequence b
  while (b < prompts.size()) {
    PrefillChunk c;
    c.first_done = static_cast<int32_t>(b);
    while (b < prompts.size() && c.rows() < chunk_tokens) {
      const auto& p = prompts[b];
      const int64_t take = std::min<int64_t>(static_cast<int64_t>(p.size()) - pos, chunk_tokens - c.rows());
      const int64_t row0 = c.rows();
      for (int64_t i = 0; i < take; ++i) {
        c.tokens.push_back(p[pos + i]);
        c.seq.push_back(static_cast<int32_t>(b));
        c.positions.push_back(static_cast<int32_t>(pos + i));
        c.lengths.push_back(static_cast<int32_t>(pos + i + 1));
      }
      for (int64_t t = 0; t < take; t += tile_rows)
        c.tiles.push_back(PrefillTile{static_cast<int32_t>(row0 + t), static_cast<int32_t>(pos + t),
                                      static_cast<int32_t>(b), static_cast<int32_t>(std::min<int64_t>(tile_rows, take - t))});
      pos += take;
      c.max_len = std::max(c.max_len, pos);
      if (pos == static_cast<int64_t>(p.size())) {
        c.done_rows.push_back(static_cast<int32_t>(c.rows() - 1));
        ++b;
        pos = 0;
      }
    }
    // Groups of consecutive sequences (tiles are still in row order, so a sequence's tiles are consecutive), then
    // longest attention first inside each (the kernels start blocks in this order: prefill_grid.cuh); ties in row
    // order.
    std::vector<int32_t> group(c.tiles.size(), 0);
    int32_t g = 0;
    int64_t group_sum = 0;
    for (std::size_t t = 0; t < c.tiles.size();) {
      std::size_t end = t;  // this sequence's tiles: [t, end)
      while (end < c.tiles.size() && c.tiles[end].seq == c.tiles[t].seq) ++end;
      const int64_t keys = static_cast<int64_t>(c.tiles[end - 1].pos0) + c.tiles[end - 1].count;
      if (group_keys > 0 && group_sum > 0 && group_sum + keys > group_keys) {
        ++g;  // this sequence does not fit the current group: it starts the next
        group_sum = 0;
      }
      group_sum += keys;
      for (; t < end; ++t) group[t] = g;
    }
    std::vector<std::size_t> order(c.tiles.size());
    for (std::size_t t = 0; t < order.size(); ++t) order[t] = t;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      if (group[a] != group[b]) return group[a] < group[b];
      return c.tiles[a].pos0 + c.tiles[a].count > c.tiles[b].pos0 + c.tiles[b].count;
    });
    std::vector<PrefillTile> sorted;
    sorted.reserve(order.size());
    for (const std::size_t t : order) sorted.push_back(c.tiles[t]);
    c.tiles = std::move(sorted);
    chunks.push_back(std::move(c));
  }
  return chunks;
}

int64_t prefill_group_keys(int64_t kv_bytes_per_key, int64_t l2_bytes) {
  if (l2_bytes <= 0 || kv_bytes_per_key <= 0) return 0;
  return std::max<int64_t>(1, l2_bytes * kPrefillL2SharePercent / 100 / kv_bytes_per_key);
}

}  // namespace nvrar::engine
