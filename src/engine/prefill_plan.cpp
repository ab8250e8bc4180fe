// Chunked prefill plan (prefill_plan.h).
#include "engine/prefill_plan.h"

#include <algorithm>

#include <fmt/format.h>

#include "nvrar/types.h"

namespace nvrar::engine {

std::vector<PrefillChunk> plan_prefill(const std::vector<std::vector<int32_t>>& prompts, int64_t chunk_tokens,
                                       int tile_rows) {
  if (prompts.empty()) throw Error("nvrar-llm: prefill: no prompts");
  if (chunk_tokens < 1 || tile_rows < 1)
    throw Error(fmt::format("nvrar-llm: prefill: chunk of {} tokens, tiles of {} rows (both must be >= 1)",
                            chunk_tokens, tile_rows));
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
    // Longest attention first (the kernels start blocks in this order: prefill_grid.cuh); ties in row order.
    std::stable_sort(c.tiles.begin(), c.tiles.end(), [](const PrefillTile& a, const PrefillTile& b) {
      return a.pos0 + a.count > b.pos0 + b.count;
    });
    chunks.push_back(std::move(c));
  }
  return chunks;
}

}  // namespace nvrar::engine
