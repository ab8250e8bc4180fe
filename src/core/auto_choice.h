// Auto's last word on a call (gpu/communicator.cpp): the tuning table's or the cost model's pick, adjusted to what
// this call can run and, for inputs in allocate_buffer() buffers, to what measured faster on them. A pure function,
// so that CPU tests pin every rule (tests/test_auto_choice.cpp).
#pragma once

#include <cstdint>

#include "nvrar/types.h"

namespace nvrar::core {

// What one call can run, as the communicator sees it.
struct CallReach {
  bool registered = false;    // the registered two-shot can take it (input, and output or gather room, suit it)
  bool oneshot = false;       // the one-shot is available and the message fits Options::oneshot_max_bytes
  bool ll128 = false;         // the LL128 two-shot is available and the message fits its capacity
  bool ll128_too_big = false;  // it is available but the message exceeds its capacity (Options::ll128_max_bytes)
  bool push = false;          // the push two-shot is available and the message fits its capacity (the same)
  bool push_too_big = false;  // it is available but the message exceeds that capacity
  bool hierarchical = false;  // NVSHMEM is present and the message fits Options::max_bytes
};

// Where the registered two-shot takes over for registered inputs: from min_bytes (NVRAR_REGISTERED_MIN_BYTES), and
// over an LL128 or push pick only from over_ll128_bytes (NVRAR_REGISTERED_OVER_LL128_BYTES).
struct RegisteredRule {
  int64_t min_bytes = int64_t{1} << 20;
  int64_t over_ll128_bytes = int64_t{32} << 20;
};

// The rules, in order: a registered pick this call cannot take and a one-shot pick over its capacity become the
// hierarchical two-shot; an LL128 or push pick over its capacity becomes NCCL (faster than the copy-in hierarchical
// form at those sizes on one node), one where that algorithm is off (e.g. its area did not fit the heap) the
// hierarchical two-shot; a hierarchical pick that cannot run becomes NCCL; then, where the registered two-shot
// can run and the message is at least rule.min_bytes, it replaces the pick, unless the pick is LL128 or push and the
// message is below rule.over_ll128_bytes.
Choice settle_auto_choice(Choice pick, int64_t bytes, const CallReach& reach, const RegisteredRule& rule);

}  // namespace nvrar::core
