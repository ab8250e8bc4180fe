// Checks the shared schedule: topology decomposition and partners (core/topology.h), slicing and chunking of a
// call and the symmetric-heap layout (core/schedule.h), and the epoch flags and cells (core/protocol.h).
// The GPU kernels and the CPU executor both trust these functions, so the properties are checked exhaustively
// over small shapes instead of on a few examples.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/protocol.h"
#include "core/schedule.h"
#include "core/topology.h"
#include "nvrar/types.h"

namespace nvrar::core {
namespace {

// ---- topology ----

TEST(ScheduleTopology, DecompositionAndPartnersForAllSmallShapes) {
  for (int nodes = 1; nodes <= 64; ++nodes) {
    for (int g = 1; nodes * g <= 64; ++g) {
      const int p = nodes * g;
      SCOPED_TRACE("N=" + std::to_string(nodes) + " G=" + std::to_string(g));
      std::vector<Topology> all;
      for (int r = 0; r < p; ++r) all.push_back(make_topology(p, g, r));
      int excess = 0;
      int with_fold_partner = 0;
      for (int r = 0; r < p; ++r) {
        const Topology& t = all[r];
        ASSERT_EQ(t.nranks, p);
        ASSERT_EQ(t.gpus_per_node, g);
        ASSERT_EQ(t.nodes, nodes);
        ASSERT_EQ(t.rank, r);
        ASSERT_EQ(t.node, r / g);
        ASSERT_EQ(t.local, r % g);
        ASSERT_EQ(t.rank_of(t.node, t.local), r);
        // pow2_nodes: the largest power of two not above N, with doubling_steps its log2.
        ASSERT_GT(t.pow2_nodes, 0);
        ASSERT_EQ(t.pow2_nodes & (t.pow2_nodes - 1), 0) << t.pow2_nodes;
        ASSERT_LE(t.pow2_nodes, nodes);
        ASSERT_GT(2 * t.pow2_nodes, nodes);
        ASSERT_EQ(1 << t.doubling_steps, t.pow2_nodes);
        ASSERT_EQ(describe(t),
                  "P=" + std::to_string(p) + " (N=" + std::to_string(nodes) + " x G=" + std::to_string(g) + ")");

        ASSERT_EQ(t.is_excess_node(), t.node >= t.pow2_nodes);
        ASSERT_EQ(t.has_fold_partner(), t.node < nodes - t.pow2_nodes);
        ASSERT_FALSE(t.is_excess_node() && t.has_fold_partner()) << "node " << t.node;
        if (t.local == 0) {
          excess += t.is_excess_node();
          with_fold_partner += t.has_fold_partner();
        }
        if (t.is_excess_node()) {
          // An excess node folds into node n - pow2_nodes, which must be a doubling node that expects it.
          const int q = t.fold_partner_node();
          ASSERT_EQ(q, t.node - t.pow2_nodes);
          ASSERT_GE(q, 0);
          const Topology& partner = all[t.rank_of(q, t.local)];
          ASSERT_FALSE(partner.is_excess_node());
          ASSERT_TRUE(partner.has_fold_partner());
          ASSERT_EQ(partner.fold_partner_node(), t.node);
        } else {
          if (t.has_fold_partner()) {
            const int q = t.fold_partner_node();
            ASSERT_EQ(q, t.node + t.pow2_nodes);
            ASSERT_LT(q, nodes);
            const Topology& partner = all[t.rank_of(q, t.local)];
            ASSERT_TRUE(partner.is_excess_node());
            ASSERT_EQ(partner.fold_partner_node(), t.node);
          }
          // Doubling partners: symmetric, inside [0, pow2_nodes), distinct over the steps, never myself.
          std::vector<int> seen;
          for (int k = 0; k < t.doubling_steps; ++k) {
            const int q = t.doubling_partner_node(k);
            ASSERT_GE(q, 0);
            ASSERT_LT(q, t.pow2_nodes) << "step " << k;
            ASSERT_NE(q, t.node);
            const Topology& partner = all[t.rank_of(q, t.local)];
            ASSERT_FALSE(partner.is_excess_node());
            ASSERT_EQ(partner.doubling_partner_node(k), t.node) << "step " << k;
            ASSERT_EQ(partner.local, t.local);
            seen.push_back(q);
          }
          std::sort(seen.begin(), seen.end());
          ASSERT_EQ(std::unique(seen.begin(), seen.end()), seen.end());
        }
      }
      ASSERT_EQ(excess, nodes - all[0].pow2_nodes);
      ASSERT_EQ(with_fold_partner, excess);
    }
  }
}

// The recursive doubling must combine every doubling node's data into every doubling node: simulate the
// exchange on sets of contributing nodes.
TEST(ScheduleTopology, DoublingReachesEveryNode) {
  for (int nodes = 1; nodes <= 64; ++nodes) {
    const Topology t0 = make_topology(nodes, 1, 0);
    std::vector<uint64_t> have(t0.pow2_nodes);
    for (int n = 0; n < t0.pow2_nodes; ++n) {
      have[n] = uint64_t{1} << n;
      if (n < nodes - t0.pow2_nodes) have[n] |= uint64_t{1} << (n + t0.pow2_nodes);  // after fold-in
    }
    for (int k = 0; k < t0.doubling_steps; ++k) {
      std::vector<uint64_t> next(have.size());
      for (int n = 0; n < t0.pow2_nodes; ++n) {
        const Topology t = make_topology(nodes, 1, n);
        next[n] = have[n] | have[t.doubling_partner_node(k)];
      }
      have = next;
    }
    const uint64_t all = nodes == 64 ? ~uint64_t{0} : (uint64_t{1} << nodes) - 1;
    for (int n = 0; n < t0.pow2_nodes; ++n) EXPECT_EQ(have[n], all) << "N=" << nodes << " node " << n;
  }
}

std::string topology_error(int nranks, int g, int rank) {
  try {
    make_topology(nranks, g, rank);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_contains(const std::string& message, const std::vector<std::string>& parts) {
  ASSERT_FALSE(message.empty()) << "expected an nvrar::Error";
  for (const auto& part : parts) EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' in: " << message;
}

TEST(ScheduleTopology, RejectsInvalidShapesWithMessagesNamingTheNumbers) {
  expect_contains(topology_error(12, 5, 3), {"rank 3", "12 ranks", "not a whole number of nodes", "5 GPUs"});
  expect_contains(topology_error(7, 2, 6), {"rank 6", "7 ranks", "not a whole number of nodes", "2 GPUs"});
  expect_contains(topology_error(8, 0, 1), {"rank 1", "GPUs per node must be positive", "got 0"});
  expect_contains(topology_error(8, -4, 2), {"rank 2", "GPUs per node must be positive", "got -4"});
  expect_contains(topology_error(0, 1, 0), {"rank 0", "must be positive", "got 0"});
  expect_contains(topology_error(-3, 1, 0), {"rank 0", "must be positive", "got -3"});
  expect_contains(topology_error(8, 4, 8), {"rank 8", "out of range", "8 ranks"});
  expect_contains(topology_error(8, 4, -1), {"rank -1", "out of range", "8 ranks"});
  EXPECT_THROW(make_topology(64, 3, 0), Error);
  EXPECT_NO_THROW(make_topology(64, 64, 63));
  EXPECT_NO_THROW(make_topology(1, 1, 0));
}

// ---- split_range ----

void check_split(int64_t total, int parts) {
  SCOPED_TRACE("total=" + std::to_string(total) + " parts=" + std::to_string(parts));
  int64_t expected_begin = 0;
  int64_t smallest = std::numeric_limits<int64_t>::max();
  int64_t largest = -1;
  for (int i = 0; i < parts; ++i) {
    const Range r = split_range(total, parts, i);
    ASSERT_EQ(r.begin, expected_begin) << "part " << i;
    ASSERT_GE(r.size(), 0) << "part " << i;
    // Documented: the first total % parts parts are the larger ones.
    ASSERT_EQ(r.size(), total / parts + (i < total % parts ? 1 : 0)) << "part " << i;
    smallest = std::min(smallest, r.size());
    largest = std::max(largest, r.size());
    expected_begin = r.end;
  }
  ASSERT_EQ(expected_begin, total);
  ASSERT_LE(largest - smallest, 1);
}

TEST(ScheduleSplitRange, PartitionsExactlyAndEvenly) {
  for (int64_t total = 0; total <= 300; ++total)
    for (int parts = 1; parts <= 70; ++parts) check_split(total, parts);
  for (int64_t total : {int64_t{1} << 20, (int64_t{1} << 31) + 7, int64_t{1'000'000'000'007}, int64_t{1} << 40})
    for (int parts : {1, 2, 3, 7, 8, 9, 64, 1000}) check_split(total, parts);
}

// ---- CallShape ----

std::vector<int64_t> probe_counts(int g) {
  std::vector<int64_t> counts = {0,    1,     2,     3,         5,         7,         8,        9,   13,
                                 16,   17,    31,    97,        101,       127,       128,      129, 1009,
                                 4093, 65521, 65537, 1'000'003, 2'097'143, 4'194'301, 4'194'304};
  for (int64_t base : {int64_t{g}, int64_t{8} * g, int64_t{4} * g, int64_t{8} * g * 64, int64_t{4} * g * 3}) {
    counts.push_back(base - 1);
    counts.push_back(base);
    counts.push_back(base + 1);
  }
  std::sort(counts.begin(), counts.end());
  counts.erase(std::unique(counts.begin(), counts.end()), counts.end());
  return counts;
}

void check_call_shape(int64_t count, int elem_bytes, int g, int64_t chunk_units) {
  const CallShape s = make_call_shape(count, elem_bytes, g, chunk_units);
  SCOPED_TRACE("count=" + std::to_string(count) + " elem_bytes=" + std::to_string(elem_bytes) +
               " G=" + std::to_string(g) + " chunk_units=" + std::to_string(chunk_units));
  ASSERT_EQ(s.count, count);
  ASSERT_EQ(s.elem_bytes, elem_bytes);
  ASSERT_EQ(s.gpus_per_node, g);
  ASSERT_EQ(s.chunk_units, chunk_units);
  ASSERT_EQ(s.elems_per_unit() * elem_bytes, kUnitBytes);
  // Units cover the bytes of the call with less than one unit of padding.
  ASSERT_GE(s.units * kUnitBytes, count * elem_bytes);
  ASSERT_GT(count * elem_bytes, (s.units - 1) * kUnitBytes);

  int64_t next_unit = 0;
  int64_t max_chunks = 0;
  for (int slice = 0; slice < g; ++slice) {
    const Range su = s.slice_units(slice);
    ASSERT_EQ(su.begin, next_unit) << "slice " << slice;
    ASSERT_GE(su.size(), 0) << "slice " << slice;
    ASSERT_LE(su.size(), s.slice_units(0).size()) << "slice 0 must be a largest slice";
    next_unit = su.end;
    const int64_t ex = s.exchanged_units(slice);
    ASSERT_GE(ex, 1) << "slice " << slice;
    // An empty slice still exchanges exactly one padding unit.
    ASSERT_EQ(ex, su.size() > 0 ? su.size() : 1) << "slice " << slice;

    // Chunks tile [0, exchanged) in order; each non-empty and no larger than chunk_units. Checked without
    // per-chunk assertions so the multi-million-unit cases stay fast.
    const int64_t chunks = s.num_chunks(slice);
    ASSERT_GE(chunks, 1);
    int64_t pos = 0;
    int64_t bad_chunk = -1;
    for (int64_t c = 0; c < chunks; ++c) {
      const Range cr = s.chunk(slice, c);
      if (cr.begin != pos || cr.size() < 1 || cr.size() > chunk_units) {
        bad_chunk = c;
        break;
      }
      pos = cr.end;
    }
    ASSERT_EQ(bad_chunk, -1) << "slice " << slice << " chunk " << bad_chunk << " = [" << s.chunk(slice, bad_chunk).begin
                             << ", " << s.chunk(slice, bad_chunk).end << ") after " << pos;
    ASSERT_EQ(pos, ex) << "slice " << slice;
    max_chunks = std::max(max_chunks, chunks);
  }
  ASSERT_EQ(next_unit, s.units);
  ASSERT_EQ(s.max_chunks(), max_chunks);
}

TEST(ScheduleCallShape, SlicesAndChunksPartitionTheCall) {
  for (int g = 1; g <= 9; ++g)
    for (int64_t count : probe_counts(g))
      for (int elem_bytes : {2, 4})
        for (int64_t chunk_units : {1, 3, 64}) {
          check_call_shape(count, elem_bytes, g, chunk_units);
          if (HasFatalFailure()) return;
        }
}

TEST(ScheduleCallShape, ExhaustiveSmallCounts) {
  for (int g = 1; g <= 9; ++g)
    for (int64_t count = 0; count <= 600; ++count)
      for (int elem_bytes : {2, 4})
        for (int64_t chunk_units : {1, 2, 3, 5, 64}) {
          check_call_shape(count, elem_bytes, g, chunk_units);
          if (HasFatalFailure()) return;
        }
}

TEST(ScheduleCallShape, NonPositiveChunkUnitsMeansOne) {
  for (int64_t chunk_units : {0, -1, -64}) {
    const CallShape s = make_call_shape(1000, 4, 4, chunk_units);
    EXPECT_EQ(s.chunk_units, 1);
    EXPECT_EQ(s.num_chunks(0), s.exchanged_units(0));
  }
}

TEST(ScheduleCallShape, KnownValues) {
  // 1000 fp32 = 4000 bytes = 250 units over 4 GPUs: 63, 63, 62, 62 units.
  const CallShape s = make_call_shape(1000, 4, 4, 10);
  EXPECT_EQ(s.units, 250);
  EXPECT_EQ(s.slice_units(0).begin, 0);
  EXPECT_EQ(s.slice_units(0).end, 63);
  EXPECT_EQ(s.slice_units(1).end, 126);
  EXPECT_EQ(s.slice_units(2).end, 188);
  EXPECT_EQ(s.slice_units(3).end, 250);
  EXPECT_EQ(s.num_chunks(0), 7);
  EXPECT_EQ(s.chunk(0, 6).begin, 60);
  EXPECT_EQ(s.chunk(0, 6).end, 63);
  EXPECT_EQ(s.max_chunks(), 7);
  // 3 bf16 = 6 bytes: one unit, owned by slice 0; the other slices exchange one padding unit each.
  const CallShape t = make_call_shape(3, 2, 4, 64);
  EXPECT_EQ(t.units, 1);
  EXPECT_EQ(t.slice_units(0).size(), 1);
  EXPECT_EQ(t.slice_units(3).size(), 0);
  EXPECT_EQ(t.exchanged_units(3), 1);
}

// ---- HeapLayout ----

void check_heap_layout(int nodes, int g, std::size_t max_bytes) {
  const Topology t = make_topology(nodes * g, g, 0);
  const HeapLayout h = make_heap_layout(t, max_bytes);
  SCOPED_TRACE("N=" + std::to_string(nodes) + " G=" + std::to_string(g) + " max_bytes=" + std::to_string(max_bytes));
  ASSERT_EQ(h.gpus_per_node, g);
  ASSERT_EQ(h.inter_steps, inter_step_count(t));
  ASSERT_EQ(h.inter_steps, t.doubling_steps + 2);
  ASSERT_GE(h.slice_units_capacity, 1);
  ASSERT_EQ(h.slot_bytes, static_cast<std::size_t>(h.slice_units_capacity) * kUnitCellBytes);

  // Inter-node step indices are distinct and inside [0, inter_steps).
  std::vector<int> steps = {fold_in_step(), fold_out_step(t)};
  for (int k = 0; k < t.doubling_steps; ++k) steps.push_back(doubling_step_index(k));
  std::sort(steps.begin(), steps.end());
  ASSERT_EQ(std::unique(steps.begin(), steps.end()), steps.end());
  ASSERT_GE(steps.front(), 0);
  ASSERT_LT(steps.back(), h.inter_steps);

  std::vector<std::pair<std::size_t, std::string>> regions;
  for (int p = 0; p < 2; ++p) {
    for (int src = 0; src < g; ++src) {
      regions.emplace_back(h.reduce_scatter(p, src),
                           "reduce_scatter(" + std::to_string(p) + "," + std::to_string(src) + ")");
      regions.emplace_back(h.all_gather(p, src), "all_gather(" + std::to_string(p) + "," + std::to_string(src) + ")");
    }
    for (int step = 0; step < h.inter_steps; ++step) {
      regions.emplace_back(h.inter(p, step), "inter(" + std::to_string(p) + "," + std::to_string(step) + ")");
      regions.emplace_back(h.staging(p, step), "staging(" + std::to_string(p) + "," + std::to_string(step) + ")");
    }
  }
  std::sort(regions.begin(), regions.end());
  for (std::size_t i = 0; i < regions.size(); ++i) {
    // Cells are stored as whole 64-bit words.
    ASSERT_EQ(regions[i].first % kCellBytes, 0u) << regions[i].second;
    ASSERT_LE(regions[i].first + h.slot_bytes, h.total_bytes) << regions[i].second;
    if (i > 0) {
      ASSERT_GE(regions[i].first, regions[i - 1].first + h.slot_bytes)
          << regions[i - 1].second << " overlaps " << regions[i].second;
    }
  }

  // Every call the layout accepts fits: each slice's exchanged units as cells fit a slot. Check the counts at
  // the limit for both element sizes, and all counts when the limit is small.
  for (int elem_bytes : {2, 4}) {
    const int64_t limit = static_cast<int64_t>(max_bytes) / elem_bytes;
    const int64_t first = max_bytes <= 4096 ? 0 : std::max<int64_t>(0, limit - 40);
    for (int64_t count = first; count <= limit; ++count) {
      const CallShape s = make_call_shape(count, elem_bytes, g, 64);
      for (int slice = 0; slice < g; ++slice)
        ASSERT_LE(static_cast<std::size_t>(s.exchanged_units(slice)) * kUnitCellBytes, h.slot_bytes)
            << "count " << count << " elem_bytes " << elem_bytes << " slice " << slice;
    }
  }
}

TEST(ScheduleHeapLayout, RegionsAreDisjointAndHoldEveryAcceptedCall) {
  for (int nodes : {1, 2, 3, 4, 5, 7, 8, 12, 16})
    for (int g = 1; g <= 9; ++g)
      for (std::size_t max_bytes : {std::size_t{0}, std::size_t{1}, std::size_t{15}, std::size_t{16}, std::size_t{17},
                                    std::size_t{100}, std::size_t{4096}, std::size_t{4095}, std::size_t{1} << 20,
                                    (std::size_t{1} << 20) + 6, std::size_t{64} << 20, std::size_t{1'000'000'007}}) {
        check_heap_layout(nodes, g, max_bytes);
        if (HasFatalFailure()) return;
      }
}

// ---- protocol ----

static_assert(kCellBytes == 8 && kCellPayloadBytes == 4 && kUnitBytes == 16);
static_assert(kCellsPerUnit == 4 && kUnitCellBytes == 32);

void check_epochs_around(uint64_t center, uint64_t radius) {
  const uint64_t lo = center > radius + 2 ? center - radius : 2;
  const uint64_t hi =
      center < std::numeric_limits<uint64_t>::max() - radius ? center + radius : std::numeric_limits<uint64_t>::max();
  for (uint64_t seq = lo;; ++seq) {
    const uint32_t f = epoch_flag(seq);
    ASSERT_NE(f, 0u) << "seq " << seq;
    ASSERT_NE(f, epoch_flag(seq - 1)) << "seq " << seq;
    ASSERT_NE(f, epoch_flag(seq - 2)) << "seq " << seq;
    ASSERT_NE(epoch_parity(seq), epoch_parity(seq - 1)) << "seq " << seq;
    ASSERT_EQ(epoch_parity(seq), epoch_parity(seq - 2)) << "seq " << seq;
    if (seq == hi) break;
  }
}

TEST(ScheduleProtocol, EpochFlagsAreNonZeroAndDifferFromTheLastTwo) {
  constexpr uint64_t kPeriod = 0xFFFFFFFFull;
  check_epochs_around(0, 1000);  // seq starts at 1; seq 0 is only a neighbour
  EXPECT_NE(epoch_flag(0), 0u);
  EXPECT_NE(epoch_flag(1), 0u);
  for (uint64_t k : {uint64_t{1}, uint64_t{2}, uint64_t{3}, uint64_t{1} << 20, kPeriod})
    check_epochs_around(k * kPeriod, 1000);
  check_epochs_around(uint64_t{1} << 32, 1000);
  check_epochs_around(uint64_t{1} << 33, 1000);
  check_epochs_around(uint64_t{1} << 63, 1000);
  check_epochs_around(std::numeric_limits<uint64_t>::max(), 1000);
  std::mt19937_64 rng(99);
  for (int i = 0; i < 10000; ++i) check_epochs_around(rng(), 2);
}

TEST(ScheduleProtocol, EpochFlagsCoverAllNonZeroValues) {
  // The flag of seq is in [1, 2^32 - 1] and flags repeat with period 2^32 - 1, so a stale cell can only be
  // mistaken for a current one after 2^32 - 1 calls.
  EXPECT_EQ(epoch_flag(0xFFFFFFFEull), 0xFFFFFFFFu);
  EXPECT_EQ(epoch_flag(0xFFFFFFFFull), 1u);
  std::mt19937_64 rng(5);
  for (int i = 0; i < 10000; ++i) {
    const uint64_t seq = rng() >> 1;
    EXPECT_EQ(epoch_flag(seq), epoch_flag(seq + 0xFFFFFFFFull));
    EXPECT_NE(epoch_flag(seq), epoch_flag(seq + 0xFFFFFFFEull));
  }
}

TEST(ScheduleProtocol, CellsRoundTrip) {
  std::vector<std::pair<uint32_t, uint32_t>> cases = {
      {0, 1}, {0xFFFFFFFFu, 1}, {0, 0xFFFFFFFFu}, {0xFFFFFFFFu, 0xFFFFFFFFu}, {0x80000000u, 0x80000000u}};
  std::mt19937 rng(3);
  for (int i = 0; i < 100000; ++i) cases.emplace_back(static_cast<uint32_t>(rng()), static_cast<uint32_t>(rng()));
  for (const auto& [payload, flag] : cases) {
    const uint64_t cell = make_cell(payload, flag);
    ASSERT_EQ(cell_payload(cell), payload);
    ASSERT_EQ(cell_flag(cell), flag);
  }
  // A zeroed heap never looks written by any call.
  EXPECT_NE(cell_flag(0), epoch_flag(1));
}

TEST(ScheduleProtocol, PhaseNames) {
  EXPECT_STREQ(phase_name(Phase::kReduceScatter), "intra-node reduce-scatter");
  EXPECT_STREQ(phase_name(Phase::kFoldIn), "inter-node fold-in");
  EXPECT_STREQ(phase_name(Phase::kDoubling), "inter-node recursive doubling");
  EXPECT_STREQ(phase_name(Phase::kFoldOut), "inter-node fold-out");
  EXPECT_STREQ(phase_name(Phase::kAllGather), "intra-node all-gather");
  EXPECT_STREQ(phase_name(Phase::kLl128ReduceScatter), "LL128 two-shot reduce-scatter");
  EXPECT_STREQ(phase_name(Phase::kLl128AllGather), "LL128 two-shot all-gather");
}

}  // namespace
}  // namespace nvrar::core
