// The NVRAR schedule: which rank owns which slice, which chunks make a slice, who talks to whom, and where
// every message lands in the symmetric heap. Written once, used by the CUDA kernels and the CPU executor.
//
// A call of `count` elements is cut into units of 16 bytes (core/protocol.h). Units are split as evenly as
// possible into G slices (the first units % G slices get one more); local rank r owns slice r. Slices are
// whole units, so no cell straddles two slices, and element indices past `count` in the last unit are padding.
// A slice with no units still exchanges one padding unit so that every pair of ranks hears from each other in
// every call (the epoch argument in protocol.h). A slice's exchanged units are cut into chunks of chunk_units
// units: the unit of pipelining across GPU thread blocks (chunk c is handled by block c % blocks everywhere).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/hd.h"
#include "core/protocol.h"
#include "core/topology.h"

namespace nvrar::core {

struct Range {
  int64_t begin = 0;
  int64_t end = 0;
  NVRAR_HD int64_t size() const { return end - begin; }
};

// Contiguous even split of `total` items into `parts`; the first total % parts parts get one extra item.
NVRAR_HD Range split_range(int64_t total, int parts, int index) {
  const int64_t base = total / parts;
  const int64_t extra = total % parts;
  const int64_t begin = index * base + (index < extra ? index : extra);
  return Range{begin, begin + base + (index < extra ? 1 : 0)};
}

NVRAR_HD int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The shape of one call: element count and size, derived unit counts, and the chunk size.
struct CallShape {
  int64_t count = 0;       // elements
  int elem_bytes = 4;      // 2 or 4
  int64_t units = 0;       // ceil(count * elem_bytes / 16)
  int64_t chunk_units = 1;  // units per chunk (>= 1)
  int gpus_per_node = 1;
  // Intra-node phases in bulk form: plain 16-byte units plus one flag per chunk, written after the chunk's data
  // (half the bytes of cells, one more fence and flag round trip). Inter-node steps always use cells.
  bool bulk = false;

  NVRAR_HD int elems_per_unit() const { return kUnitBytes / elem_bytes; }
  // Units of slice s (may be empty when units < G).
  NVRAR_HD Range slice_units(int s) const { return split_range(units, gpus_per_node, s); }
  // Units actually exchanged for slice s: at least one, so every pair communicates in every call.
  NVRAR_HD int64_t exchanged_units(int s) const {
    const int64_t n = slice_units(s).size();
    return n > 0 ? n : 1;
  }
  NVRAR_HD int64_t num_chunks(int s) const { return ceil_div(exchanged_units(s), chunk_units); }
  // Units [begin, end) of chunk c of slice s, relative to the slice's first unit.
  NVRAR_HD Range chunk(int s, int64_t c) const {
    const int64_t begin = c * chunk_units;
    const int64_t end = begin + chunk_units;
    const int64_t limit = exchanged_units(s);
    return Range{begin, end < limit ? end : limit};
  }
  // Largest chunk count over all slices (slice 0 is never smaller than the others).
  NVRAR_HD int64_t max_chunks() const { return num_chunks(0); }
};

// A call moves its intra-node phases in bulk form from bulk_min_bytes of payload up.
NVRAR_HD bool use_bulk(int64_t bytes, int64_t bulk_min_bytes) { return bytes >= bulk_min_bytes; }

constexpr int64_t kNeverBulk = INT64_MAX;

NVRAR_HD CallShape make_call_shape(int64_t count, int elem_bytes, int gpus_per_node, int64_t chunk_units,
                                   int64_t bulk_min_bytes = kNeverBulk) {
  CallShape s;
  s.bulk = use_bulk(count * elem_bytes, bulk_min_bytes);
  s.count = count;
  s.elem_bytes = elem_bytes;
  s.units = ceil_div(count * elem_bytes, kUnitBytes);
  s.chunk_units = chunk_units > 0 ? chunk_units : 1;
  s.gpus_per_node = gpus_per_node;
  return s;
}

// Inter-node receive steps, in order: fold-in (excess node -> partner), doubling steps 0..L-1, fold-out.
NVRAR_HD int inter_step_count(const Topology& t) { return t.doubling_steps + 2; }
NVRAR_HD int fold_in_step() { return 0; }
NVRAR_HD int doubling_step_index(int k) { return 1 + k; }
NVRAR_HD int fold_out_step(const Topology& t) { return t.doubling_steps + 1; }

// Byte offsets of every region in each rank's symmetric heap (the same on every rank). Each region holds the
// cells of one slice (slot_bytes). Regions by parity p in {0, 1}:
//   reduce_scatter(p, src): cells of my slice sent by local rank src
//   all_gather(p, src):     cells of slice src sent by its owner, local rank src
//   inter(p, step):         cells from my inter-node partner for that step
//   staging(p, step):       cells I build before putting them to a remote partner (put needs a local source)
// and, for calls in bulk form, separate regions (a stale cell must never be read as plain data, nor the reverse):
//   bulk_reduce_scatter(p, src), bulk_all_gather(p, src): the slice's units as plain data, then one 8-byte flag
//   per chunk (bulk_flag) that the sender writes after the chunk's data.
struct HeapLayout {
  int64_t slice_units_capacity = 1;  // most units any slice of an accepted call can have
  int gpus_per_node = 1;
  int inter_steps = 2;
  std::size_t slot_bytes = kUnitCellBytes;
  std::size_t bulk_base = 0;
  std::size_t bulk_slot_bytes = kUnitBytes + 8;
  std::size_t total_bytes = 0;

  NVRAR_HD std::size_t bulk_reduce_scatter(int parity, int src) const {
    return bulk_base + (static_cast<std::size_t>(parity) * gpus_per_node + src) * bulk_slot_bytes;
  }
  NVRAR_HD std::size_t bulk_all_gather(int parity, int src) const {
    return bulk_base + (static_cast<std::size_t>(2 + parity) * gpus_per_node + src) * bulk_slot_bytes;
  }
  // Flag of chunk c in a bulk region (chunks are at least one unit, so a slot holds one flag per unit).
  NVRAR_HD std::size_t bulk_flag(std::size_t region, int64_t chunk) const {
    return region + static_cast<std::size_t>(slice_units_capacity) * kUnitBytes + 8 * static_cast<std::size_t>(chunk);
  }

  NVRAR_HD std::size_t reduce_scatter(int parity, int src) const {
    return (static_cast<std::size_t>(parity) * gpus_per_node + src) * slot_bytes;
  }
  NVRAR_HD std::size_t all_gather(int parity, int src) const {
    return (static_cast<std::size_t>(2 + parity) * gpus_per_node + src) * slot_bytes;
  }
  NVRAR_HD std::size_t inter(int parity, int step) const {
    return (static_cast<std::size_t>(4) * gpus_per_node + static_cast<std::size_t>(parity) * inter_steps + step) *
           slot_bytes;
  }
  NVRAR_HD std::size_t staging(int parity, int step) const {
    return (static_cast<std::size_t>(4) * gpus_per_node + static_cast<std::size_t>(2 + parity) * inter_steps + step) *
           slot_bytes;
  }
};

// Layout for calls of at most max_bytes of elements.
NVRAR_HD HeapLayout make_heap_layout(const Topology& t, std::size_t max_bytes) {
  HeapLayout h;
  const int64_t max_units = ceil_div(static_cast<int64_t>(max_bytes), kUnitBytes);
  const int64_t per_slice = ceil_div(max_units, t.gpus_per_node);
  h.slice_units_capacity = per_slice > 0 ? per_slice : 1;
  h.gpus_per_node = t.gpus_per_node;
  h.inter_steps = inter_step_count(t);
  h.slot_bytes = static_cast<std::size_t>(h.slice_units_capacity) * kUnitCellBytes;
  h.bulk_base = (static_cast<std::size_t>(4) * t.gpus_per_node + static_cast<std::size_t>(4) * h.inter_steps) *
                h.slot_bytes;
  h.bulk_slot_bytes = static_cast<std::size_t>(h.slice_units_capacity) * (kUnitBytes + 8);
  h.total_bytes = h.bulk_base + static_cast<std::size_t>(4) * t.gpus_per_node * h.bulk_slot_bytes;
  return h;
}

}  // namespace nvrar::core
