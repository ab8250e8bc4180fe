// The plan of a chunked prefill (CPU, no CUDA): a batch of prompts of any lengths cut into forwards of at most
// `chunk_tokens` rows. Sequences are packed in order, so a chunk holds the tail of one sequence, whole sequences and
// the head of another; a sequence longer than a chunk spans several. Each row is one prompt token with its
// sequence (the KV-cache slot), position and attention length (position + 1, causal). The query tiles of the
// prefill attention kernel (flash_prefill.h) never cross a sequence: a tile is up to `tile_rows` consecutive rows of
// one sequence. A chunk's tiles are ordered by attention length, longest first (the kernels start them in that
// order, so the shortest end the kernel: gpu/prefill_grid.cuh), within groups of consecutive sequences whose keys
// together stay within `group_keys` (a group's K and V fit in L2, so the blocks that run together reuse them
// instead of each sequence's K and V being read again from HBM); the groups run in sequence order. The sequences
// whose last prompt token falls in a chunk are a consecutive range; their last rows are kept for the lm_head, which
// runs once after the last chunk.
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

// group_keys: the most attention keys (summed over a group's sequences, each counted up to its longest attention in
// the chunk) that one group of tiles may take; a sequence with more is a group of its own; 0: the whole chunk is
// one group (longest first across all its tiles). Throws nvrar::Error for an empty batch, an empty prompt, or
// chunk_tokens / tile_rows < 1, or group_keys < 0.
std::vector<PrefillChunk> plan_prefill(const std::vector<std::vector<int32_t>>& prompts, int64_t chunk_tokens,
                                       int tile_rows, int64_t group_keys = 0);

// The group_keys of plan_prefill for a model whose K and V take kv_bytes_per_key bytes per key in one layer (this
// rank's kv_heads x head_dim x 2 bytes x 2), on a GPU of l2_bytes of L2: the keys whose K and V fill 70% of it (the
// share the attention's L2 sections use, gpu/prefill_grid.cuh); 0 (one group) where l2_bytes is unknown (0).
int64_t prefill_group_keys(int64_t kv_bytes_per_key, int64_t l2_bytes);

// The share of L2 (percent) that the prefill attention's working set is sized to: plan_prefill's groups of sequences
// (prefill_group_keys) and the kernels' sections of KV heads (gpu/prefill_grid.cuh).
constexpr int64_t kPrefillL2SharePercent = 70;

}  // namespace nvrar::engine
