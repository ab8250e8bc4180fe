// The plan of a chunked prefill (CPU, no CUDA): a batch of prompts of any lengths cut into forwards of at most
// `chunk_tokens` rows. Sequences are packed in order, so a chunk holds the tail of one sequence, whole sequences and
// the head of another; a sequence longer than a chunk spans several. Each row is one prompt token with its
// sequence (the KV-cache slot), position and attention length (position + 1, causal). The query tiles of the
// prefill attention kernel (flash_prefill.h) never cross a sequence: a tile is up to `tile_rows` consecutive rows of
// one sequence. A chunk's tiles are ordered by attention length, longest first (the kernels start them in that
// order, so the shortest end the kernel: gpu/prefill_grid.cuh). The sequences whose last prompt token falls in a
// chunk are a consecutive range; their last rows are kept for the lm_head, which runs once after the last chunk.
#pragma once

#include <cstdint>
#include <vector>

namespace nvrar::engine {

// A query tile: rows [row0, row0 + count) of the chunk, positions [pos0, pos0 + count) of sequence seq.
struct PrefillTile {
  int32_t row0 = 0;
  int32_t pos0 = 0;
  int32_t seq = 0;
  int32_t count = 0;
};

struct PrefillChunk {
  std::vector<int32_t> tokens, seq, positions, lengths;  // per row
  std::vector<PrefillTile> tiles;
  int32_t first_done = 0;             // sequences [first_done, first_done + done_rows.size()) end in this chunk
  std::vector<int32_t> done_rows;     // their last rows in this chunk
  int64_t max_len = 0;                // the largest attention length of the chunk
  int64_t rows() const { return static_cast<int64_t>(tokens.size()); }
};

// Throws nvrar::Error for an empty batch, an empty prompt, or chunk_tokens / tile_rows < 1.
std::vector<PrefillChunk> plan_prefill(const std::vector<std::vector<int32_t>>& prompts, int64_t chunk_tokens,
                                       int tile_rows);

}  // namespace nvrar::engine
