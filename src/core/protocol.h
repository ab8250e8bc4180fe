// The wire protocol of NVRAR: flagged cells and per-call epochs. Shared by the CPU executor and the kernels.
//
// Data travels in 8-byte cells: 4 bytes of payload and the 4-byte flag of the call (epoch) that wrote it,
// stored as one 64-bit word. A receiver polls the cell until its flag equals the current call's flag, so
// arrival needs no separate signal and no buffer or flag is ever reset.
//
// Epochs: every call on a communicator takes the next sequence number seq = 1, 2, 3, ... Its flag is
// (seq mod (2^32 - 1)) + 1, never 0 (fresh, zeroed buffers never look written) and different from the flag of
// seq - 2. Receive regions are double-buffered by seq's parity. Why that is enough without a barrier: every
// pair of ranks that exchanges data in a call exchanges it in both directions, at least one unit each way
// (empty slices send a padding unit). A rank that received its partner's data of call seq - 1 knows the
// partner had finished call seq - 2 (calls are stream/thread-ordered) and so has read everything it was sent in
// the region of parity seq % 2. Writing call seq's data there is safe; a stale cell carries another flag.
#pragma once

#include <cstdint>

#include "core/hd.h"

namespace nvrar::core {

constexpr int kCellBytes = 8;         // one 64-bit store: payload + flag
constexpr int kCellPayloadBytes = 4;  // 1 fp32 or 2 bf16/fp16 elements
constexpr int kUnitBytes = 16;        // schedule granularity: 16 bytes of elements (one vector load on the GPU)
constexpr int kCellsPerUnit = kUnitBytes / kCellPayloadBytes;
constexpr int kUnitCellBytes = kCellsPerUnit * kCellBytes;  // 32 bytes of cells carry one unit

NVRAR_HD uint32_t epoch_flag(uint64_t seq) { return static_cast<uint32_t>(seq % 0xFFFFFFFFull) + 1u; }
NVRAR_HD int epoch_parity(uint64_t seq) { return static_cast<int>(seq & 1u); }

NVRAR_HD uint64_t make_cell(uint32_t payload, uint32_t flag) {
  return (static_cast<uint64_t>(flag) << 32) | payload;
}
NVRAR_HD uint32_t cell_flag(uint64_t cell) { return static_cast<uint32_t>(cell >> 32); }
NVRAR_HD uint32_t cell_payload(uint64_t cell) { return static_cast<uint32_t>(cell); }

// Where a rank waits, for timeout messages: the phase and, for the inter-node phase, the step.
enum class Phase : int {
  kReduceScatter = 0,
  kFoldIn = 1,
  kDoubling = 2,
  kFoldOut = 3,
  kAllGather = 4,
  kOneShot = 5,
  kRegisteredReady = 6,  // registered two-shot: waiting for a peer's "my input is ready"
  kRegisteredDone = 7,   // registered two-shot: waiting for a peer's "your share of my sums is stored"
  kLl128ReduceScatter = 8,  // LL128 two-shot: waiting for a peer's line of my slice
  kLl128AllGather = 9,      // LL128 two-shot: waiting for the owner's summed line
  kPushReduceScatter = 10,  // push two-shot: waiting for a peer's piece of my slice
  kPushAllGather = 11,      // push two-shot: waiting for the owner's summed piece
};

inline const char* phase_name(Phase p) {
  switch (p) {
    case Phase::kReduceScatter:
      return "intra-node reduce-scatter";
    case Phase::kFoldIn:
      return "inter-node fold-in";
    case Phase::kDoubling:
      return "inter-node recursive doubling";
    case Phase::kFoldOut:
      return "inter-node fold-out";
    case Phase::kAllGather:
      return "intra-node all-gather";
    case Phase::kOneShot:
      return "one-shot exchange";
    case Phase::kRegisteredReady:
      return "registered two-shot (inputs ready)";
    case Phase::kRegisteredDone:
      return "registered two-shot (sums stored)";
    case Phase::kLl128ReduceScatter:
      return "LL128 two-shot reduce-scatter";
    case Phase::kLl128AllGather:
      return "LL128 two-shot all-gather";
    case Phase::kPushReduceScatter:
      return "push two-shot reduce-scatter";
    case Phase::kPushAllGather:
      return "push two-shot all-gather";
  }
  return "unknown phase";
}

}  // namespace nvrar::core
