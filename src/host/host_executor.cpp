// CPU executor of the hierarchical all-reduce: one rank per thread over a HostTransport heap.
//
// It follows the GPU kernel's structure with a single "thread block":
//   1. reduce-scatter push: cells of every other local rank's slice go straight into that rank's heap (in bulk
//      form, large calls: plain units and then one flag per chunk);
//   2. per chunk of the owned slice: wait for the G-1 peers' cells and sum in local-rank order (fp32), round;
//      inter-node fold-in / recursive doubling / fold-out with cells put to the partner; push the final chunk
//      to every local peer and write it to the output;
//   3. all-gather receive: wait for every other slice's final cells and write them to the output.
// Every wait has a deadline; a timeout throws an error naming this rank, the peer, the phase, step and call.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <fmt/format.h>

#include "config/settings.h"
#include "core/numeric.h"
#include "core/protocol.h"
#include "core/schedule.h"
#include "core/topology.h"
#include "host/host_settings.h"
#include "host/host_transport.h"
#include "nvrar/host_executor.h"

namespace nvrar {

using core::CallShape;
using core::HeapLayout;
using core::Phase;
using core::Range;
using core::Topology;

struct HostCommunicator::State {
  host::HostTransport* transport = nullptr;
  Topology topo;
  HeapLayout layout;
  std::size_t max_bytes = 0;
  int timeout_ms = 0;
  int chunk_units = 1;
  int64_t bulk_min_bytes = core::kNeverBulk;
  uint64_t seq = 0;                // sequence number of the last call
  std::string failure;             // set once a call failed: the protocol state is then unknown
};

namespace {

constexpr int kSpinsBeforeYield = 4;

// One call of the algorithm for element type T, on one rank.
template <typename T>
class HostAllReduce {
 public:
  HostAllReduce(HostCommunicator::State& st, const T* in, T* out, int64_t count)
      : st_(st), t_(st.topo), h_(st.layout), in_(in), out_(out),
        shape_(core::make_call_shape(count, sizeof(T), st.topo.gpus_per_node, st.chunk_units, st.bulk_min_bytes)),
        seq_(st.seq + 1), flag_(core::epoch_flag(seq_)), parity_(core::epoch_parity(seq_)),
        timeout_(std::chrono::milliseconds(st.timeout_ms)) {}

  void run() {
    push_reduce_scatter();
    const int64_t my_chunks = shape_.num_chunks(t_.local);
    for (int64_t c = 0; c < my_chunks; ++c) {
      const Range chunk = shape_.chunk(t_.local, c);
      std::vector<uint32_t> partial(static_cast<std::size_t>(chunk.size()) * core::kCellsPerUnit);
      reduce_chunk(c, chunk, partial);
      inter_node_chunk(chunk, partial);
      push_all_gather_chunk(c, chunk, partial);
    }
    receive_all_gather();
  }

 private:
  static constexpr int kElemsPerUnit = core::kUnitBytes / static_cast<int>(sizeof(T));

  // Elements [first, last) of the input/output that unit u of slice s covers; empty for padding units.
  Range unit_elements(int s, int64_t u) const {
    const Range su = shape_.slice_units(s);
    if (u >= su.size()) return Range{0, 0};
    const int64_t first = (su.begin + u) * kElemsPerUnit;
    const int64_t last = first + kElemsPerUnit;
    return Range{first, last < shape_.count ? last : shape_.count};
  }

  // The 16 payload bytes of unit u of slice s of the input (zero past the end).
  void load_input_unit(int s, int64_t u, uint32_t words[core::kCellsPerUnit]) const {
    std::memset(words, 0, core::kUnitBytes);
    const Range e = unit_elements(s, u);
    if (e.size() > 0) std::memcpy(words, in_ + e.begin, static_cast<std::size_t>(e.size()) * sizeof(T));
  }

  void store_output_unit(int s, int64_t u, const uint32_t words[core::kCellsPerUnit]) const {
    const Range e = unit_elements(s, u);
    if (e.size() > 0) std::memcpy(out_ + e.begin, words, static_cast<std::size_t>(e.size()) * sizeof(T));
  }

  void make_cells(const uint32_t words[core::kCellsPerUnit], uint64_t cells[core::kCellsPerUnit]) const {
    for (int i = 0; i < core::kCellsPerUnit; ++i) cells[i] = core::make_cell(words[i], flag_);
  }

  // Spins until the unit at `offset` of this rank's heap carries this call's flag; copies out its payload.
  void wait_unit(std::size_t offset, int peer, Phase phase, int step, int s, int64_t u,
                 uint32_t words[core::kCellsPerUnit]) const {
    for (int i = 0; i < core::kCellsPerUnit; ++i) {
      const std::size_t cell_offset = offset + static_cast<std::size_t>(i) * core::kCellBytes;
      uint64_t cell = st_.transport->load_cell(t_.rank, cell_offset);
      if (core::cell_flag(cell) != flag_) {
        const auto deadline = std::chrono::steady_clock::now() + timeout_;
        for (int spins = 1; core::cell_flag(cell) != flag_; ++spins) {
          if (spins % kSpinsBeforeYield == 0) {
            if (std::chrono::steady_clock::now() > deadline) fail_timeout(peer, phase, step, s, u);
            std::this_thread::yield();
          }
          cell = st_.transport->load_cell(t_.rank, cell_offset);
        }
      }
      words[i] = core::cell_payload(cell);
    }
  }

  // Spins until the 64-bit flag at `offset` of this rank's heap holds this call's flag (bulk form).
  void wait_flag(std::size_t offset, int peer, Phase phase, int s, int64_t chunk) const {
    if (st_.transport->load_cell(t_.rank, offset) == flag_) return;
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    for (int spins = 1; st_.transport->load_cell(t_.rank, offset) != flag_; ++spins) {
      if (spins % kSpinsBeforeYield == 0) {
        if (std::chrono::steady_clock::now() > deadline) fail_timeout(peer, phase, 0, s, shape_.chunk(s, chunk).begin);
        std::this_thread::yield();
      }
    }
  }

  // Reads unit u of a bulk region of this rank's heap.
  void read_bulk_unit(std::size_t region, int64_t u, uint32_t words[core::kCellsPerUnit]) const {
    std::memcpy(words, st_.transport->heap(t_.rank) + region + static_cast<std::size_t>(u) * core::kUnitBytes,
                core::kUnitBytes);
  }

  [[noreturn]] void fail_timeout(int peer, Phase phase, int step, int s, int64_t u) const {
    const std::string step_text = phase == Phase::kDoubling ? fmt::format(" step {}", step) : std::string();
    throw Error(fmt::format(
        "nvrar: rank {} (node {}, local {}) allreduce call {}: timed out after {} ms in {}{} waiting for rank {} "
        "(unit {} of slice {}); that rank did not reach this call, failed, or called with another count or dtype",
        t_.rank, t_.node, t_.local, seq_, st_.timeout_ms, core::phase_name(phase), step_text, peer, u, s));
  }

  // fp32 sum of two units of T payload, rounded back to T: dst = round(dst + src).
  static void add_units(uint32_t dst[core::kCellsPerUnit], const uint32_t src[core::kCellsPerUnit]) {
    T a[kElemsPerUnit];
    T b[kElemsPerUnit];
    std::memcpy(a, dst, core::kUnitBytes);
    std::memcpy(b, src, core::kUnitBytes);
    for (int i = 0; i < kElemsPerUnit; ++i)
      a[i] = core::from_float<T>(core::to_float(a[i]) + core::to_float(b[i]));
    std::memcpy(dst, a, core::kUnitBytes);
  }

  std::size_t unit_offset(int64_t u) const { return static_cast<std::size_t>(u) * core::kUnitCellBytes; }

  // Phase 1, sending side: slice s of my input to its owner, local rank s, slot [my local rank].
  void push_reduce_scatter() {
    for (int s = 0; s < t_.gpus_per_node; ++s) {
      if (s == t_.local) continue;
      const int owner = t_.rank_of(t_.node, s);
      if (shape_.bulk) {
        const std::size_t region = h_.bulk_reduce_scatter(parity_, t_.local);
        for (int64_t c = 0; c < shape_.num_chunks(s); ++c) {
          const Range chunk = shape_.chunk(s, c);
          for (int64_t u = chunk.begin; u < chunk.end; ++u) {
            uint32_t words[core::kCellsPerUnit];
            load_input_unit(s, u, words);
            st_.transport->store_bytes(owner, region + static_cast<std::size_t>(u) * core::kUnitBytes, words,
                                       core::kUnitBytes);
          }
          st_.transport->store_flag(owner, h_.bulk_flag(region, c), flag_);
        }
        continue;
      }
      const std::size_t region = h_.reduce_scatter(parity_, t_.local);
      for (int64_t u = 0; u < shape_.exchanged_units(s); ++u) {
        uint32_t words[core::kCellsPerUnit];
        uint64_t cells[core::kCellsPerUnit];
        load_input_unit(s, u, words);
        make_cells(words, cells);
        st_.transport->store_cells(owner, region + unit_offset(u), cells, core::kCellsPerUnit);
      }
    }
  }

  // Phase 1, owner side: node-wide sum of the chunk, summed in local-rank order 0..G-1 on every node.
  void reduce_chunk(int64_t c, Range chunk, std::vector<uint32_t>& partial) const {
    if (shape_.bulk)  // each peer's flag covers the whole chunk
      for (int src = 0; src < t_.gpus_per_node; ++src)
        if (src != t_.local)
          wait_flag(h_.bulk_flag(h_.bulk_reduce_scatter(parity_, src), c), t_.rank_of(t_.node, src),
                    Phase::kReduceScatter, t_.local, c);
    for (int64_t u = chunk.begin; u < chunk.end; ++u) {
      float acc[kElemsPerUnit] = {};
      for (int src = 0; src < t_.gpus_per_node; ++src) {
        uint32_t words[core::kCellsPerUnit];
        if (src == t_.local) {
          load_input_unit(t_.local, u, words);
        } else if (shape_.bulk) {
          read_bulk_unit(h_.bulk_reduce_scatter(parity_, src), u, words);
        } else {
          wait_unit(h_.reduce_scatter(parity_, src) + unit_offset(u), t_.rank_of(t_.node, src), Phase::kReduceScatter,
                    0, t_.local, u, words);
        }
        T x[kElemsPerUnit];
        std::memcpy(x, words, core::kUnitBytes);
        for (int i = 0; i < kElemsPerUnit; ++i) acc[i] += core::to_float(x[i]);
      }
      T rounded[kElemsPerUnit];
      for (int i = 0; i < kElemsPerUnit; ++i) rounded[i] = core::from_float<T>(acc[i]);
      std::memcpy(&partial[static_cast<std::size_t>(u - chunk.begin) * core::kCellsPerUnit], rounded, core::kUnitBytes);
    }
  }

  // Builds the chunk's cells in my staging region for `step` and puts them to `peer`'s inter region.
  void put_chunk(Range chunk, const std::vector<uint32_t>& partial, int step, int peer) const {
    std::vector<uint64_t> cells(partial.size());
    for (std::size_t i = 0; i < partial.size(); ++i) cells[i] = core::make_cell(partial[i], flag_);
    const std::size_t staging = h_.staging(parity_, step) + unit_offset(chunk.begin);
    std::memcpy(st_.transport->heap(t_.rank) + staging, cells.data(), cells.size() * core::kCellBytes);
    st_.transport->put(peer, h_.inter(parity_, step) + unit_offset(chunk.begin), st_.transport->heap(t_.rank) + staging,
                       cells.size() * core::kCellBytes);
  }

  // Waits for the partner's cells of `step` and combines: replace (fold-out) or add (fold-in, doubling).
  void receive_chunk(Range chunk, std::vector<uint32_t>& partial, int step, int peer, Phase phase, int k,
                     bool replace) const {
    for (int64_t u = chunk.begin; u < chunk.end; ++u) {
      uint32_t words[core::kCellsPerUnit];
      wait_unit(h_.inter(parity_, step) + unit_offset(u), peer, phase, k, t_.local, u, words);
      uint32_t* mine = &partial[static_cast<std::size_t>(u - chunk.begin) * core::kCellsPerUnit];
      if (replace)
        std::memcpy(mine, words, core::kUnitBytes);
      else
        add_units(mine, words);
    }
  }

  // Phase 2 on one chunk of the owned slice, with the same local rank on the other nodes.
  void inter_node_chunk(Range chunk, std::vector<uint32_t>& partial) const {
    if (t_.nodes == 1) return;
    const int fold_peer = t_.rank_of(t_.fold_partner_node(), t_.local);
    if (t_.is_excess_node()) {
      put_chunk(chunk, partial, core::fold_in_step(), fold_peer);
      receive_chunk(chunk, partial, core::fold_out_step(t_), fold_peer, Phase::kFoldOut, 0, /*replace=*/true);
      return;
    }
    if (t_.has_fold_partner())
      receive_chunk(chunk, partial, core::fold_in_step(), fold_peer, Phase::kFoldIn, 0, /*replace=*/false);
    for (int k = 0; k < t_.doubling_steps; ++k) {
      const int peer = t_.rank_of(t_.doubling_partner_node(k), t_.local);
      put_chunk(chunk, partial, core::doubling_step_index(k), peer);
      receive_chunk(chunk, partial, core::doubling_step_index(k), peer, Phase::kDoubling, k, /*replace=*/false);
    }
    if (t_.has_fold_partner()) put_chunk(chunk, partial, core::fold_out_step(t_), fold_peer);
  }

  // Phase 3, sending side: the final chunk to every local peer's all-gather slot [my local rank], and to my output.
  void push_all_gather_chunk(int64_t c, Range chunk, const std::vector<uint32_t>& partial) const {
    if (shape_.bulk) {
      const std::size_t region = h_.bulk_all_gather(parity_, t_.local);
      const std::size_t first = static_cast<std::size_t>(chunk.begin) * core::kUnitBytes;
      for (int l = 0; l < t_.gpus_per_node; ++l) {
        if (l == t_.local) continue;
        const int peer = t_.rank_of(t_.node, l);
        st_.transport->store_bytes(peer, region + first, partial.data(), partial.size() * sizeof(uint32_t));
        st_.transport->store_flag(peer, h_.bulk_flag(region, c), flag_);
      }
      for (int64_t u = chunk.begin; u < chunk.end; ++u)
        store_output_unit(t_.local, u, &partial[static_cast<std::size_t>(u - chunk.begin) * core::kCellsPerUnit]);
      return;
    }
    const std::size_t region = h_.all_gather(parity_, t_.local);
    for (int64_t u = chunk.begin; u < chunk.end; ++u) {
      const uint32_t* words = &partial[static_cast<std::size_t>(u - chunk.begin) * core::kCellsPerUnit];
      uint64_t cells[core::kCellsPerUnit];
      make_cells(words, cells);
      for (int l = 0; l < t_.gpus_per_node; ++l) {
        if (l == t_.local) continue;
        st_.transport->store_cells(t_.rank_of(t_.node, l), region + unit_offset(u), cells, core::kCellsPerUnit);
      }
      store_output_unit(t_.local, u, words);
    }
  }

  // Phase 3, receiving side: every other slice from its owner.
  void receive_all_gather() const {
    for (int s = 0; s < t_.gpus_per_node; ++s) {
      if (s == t_.local) continue;
      if (shape_.bulk) {
        const std::size_t region = h_.bulk_all_gather(parity_, s);
        for (int64_t c = 0; c < shape_.num_chunks(s); ++c) {
          wait_flag(h_.bulk_flag(region, c), t_.rank_of(t_.node, s), Phase::kAllGather, s, c);
          const Range chunk = shape_.chunk(s, c);
          for (int64_t u = chunk.begin; u < chunk.end; ++u) {
            uint32_t words[core::kCellsPerUnit];
            read_bulk_unit(region, u, words);
            store_output_unit(s, u, words);
          }
        }
        continue;
      }
      for (int64_t u = 0; u < shape_.exchanged_units(s); ++u) {
        uint32_t words[core::kCellsPerUnit];
        wait_unit(h_.all_gather(parity_, s) + unit_offset(u), t_.rank_of(t_.node, s), Phase::kAllGather, 0, s, u,
                  words);
        store_output_unit(s, u, words);
      }
    }
  }

  HostCommunicator::State& st_;
  const Topology& t_;
  const HeapLayout& h_;
  const T* in_;
  T* out_;
  CallShape shape_;
  uint64_t seq_;
  uint32_t flag_;
  int parity_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

void HostCommunicator::allreduce(const void* in, void* out, std::size_t count, DataType dtype) {
  State& st = *state_;
  const int rank = st.topo.rank;
  if (!st.failure.empty())
    throw Error(fmt::format("nvrar: rank {} allreduce: communicator unusable after an earlier failure: {}", rank,
                            st.failure));
  if (!dtype_valid(dtype))
    throw Error(fmt::format("nvrar: rank {} allreduce: unsupported dtype value {} (float32, bfloat16, float16 only)",
                            rank, static_cast<int>(dtype)));
  if (count == 0) return;  // a valid no-op: no epoch is used
  if (in == nullptr || out == nullptr)
    throw Error(fmt::format("nvrar: rank {} allreduce: {} pointer is null (count {})", rank,
                            in == nullptr ? "input" : "output", count));
  const std::size_t bytes_needed = count * dtype_size(dtype);
  if (count > st.max_bytes / dtype_size(dtype))
    throw Error(fmt::format("nvrar: rank {} allreduce: count {} of {} ({} bytes) exceeds the communicator's capacity "
                            "of {} bytes (HostGroupOptions::max_bytes)",
                            rank, count, dtype_name(dtype), bytes_needed, st.max_bytes));
  try {
    core::visit_dtype(dtype, [&](auto tag) {
      using T = decltype(tag);
      HostAllReduce<T>(st, static_cast<const T*>(in), static_cast<T*>(out), static_cast<int64_t>(count)).run();
    });
    ++st.seq;
  } catch (const Error& e) {
    st.failure = e.what();
    throw;
  }
}

int HostCommunicator::rank() const { return state_->topo.rank; }
int HostCommunicator::size() const { return state_->topo.nranks; }
std::size_t HostCommunicator::max_bytes() const { return state_->max_bytes; }

struct HostGroup::Impl {
  std::unique_ptr<host::HostTransport> transport;
  std::vector<std::unique_ptr<HostCommunicator::State>> states;
  std::vector<HostCommunicator> comms;
  Topology topo0;
  std::size_t max_bytes = 0;
};

HostGroup::HostGroup(const HostGroupOptions& options) : impl_(std::make_unique<Impl>()) {
  if (options.ranks <= 0)
    throw Error(fmt::format("nvrar: host executor: number of ranks must be positive, got {}", options.ranks));
  const config::Settings& settings = config::settings();  // throws on a malformed NVRAR_* variable
  // One process holds every rank of the group: its settings are rank 0's as much as any other's.
  config::print_settings_if_debug(0);
  host::check_unused_settings(settings);
  int gpus_per_node = options.gpus_per_node;
  if (gpus_per_node == 0) gpus_per_node = static_cast<int>(settings.gpus_per_node);
  if (gpus_per_node == 0) gpus_per_node = options.ranks;
  if (options.max_bytes == 0) throw Error("nvrar: host executor: max_bytes must be positive");
  // The table bounds both below INT_MAX (86400000 ms, 1 << 20 units), so the casts cannot truncate.
  const int timeout_ms = options.timeout_ms > 0 ? options.timeout_ms : static_cast<int>(settings.timeout_ms);
  const int chunk_units = options.chunk_units > 0 ? options.chunk_units : static_cast<int>(settings.host_chunk_units);
  if (timeout_ms <= 0) throw Error("nvrar: host executor: timeout must be positive (NVRAR_TIMEOUT_MS)");
  const int64_t bulk_min_bytes = options.bulk_min_bytes > 0 ? static_cast<int64_t>(options.bulk_min_bytes)
                                                            : settings.bulk_min_bytes;
  if (chunk_units <= 0) throw Error("nvrar: host executor: chunk units must be positive (NVRAR_HOST_CHUNK_UNITS)");

  impl_->topo0 = core::make_topology(options.ranks, gpus_per_node, 0);  // validates P = N x G
  impl_->max_bytes = options.max_bytes;
  const HeapLayout layout = core::make_heap_layout(impl_->topo0, options.max_bytes);
  // The heaps are zeroed at once: more than the machine holds would not fail cleanly (Linux overcommits, and the
  // out-of-memory killer ends the process), so refuse it here with the sizes.
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_bytes = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page_bytes > 0) {
    const double memory = static_cast<double>(pages) * static_cast<double>(page_bytes);
    const double heaps = static_cast<double>(layout.total_bytes) * options.ranks;
    if (heaps > memory)
      throw Error(fmt::format("nvrar: host executor: {} ranks with messages up to {} bytes need {:.1f} GiB of heap "
                              "({} bytes per rank), more than this machine's {:.1f} GiB of memory",
                              options.ranks, options.max_bytes, heaps / (1 << 30), layout.total_bytes,
                              memory / (1 << 30)));
  }
  impl_->transport = std::make_unique<host::HostTransport>(options.ranks, layout.total_bytes, options.async_puts);
  for (int r = 0; r < options.ranks; ++r) {
    auto st = std::make_unique<HostCommunicator::State>();
    st->transport = impl_->transport.get();
    st->topo = core::make_topology(options.ranks, gpus_per_node, r);
    st->layout = layout;
    st->max_bytes = options.max_bytes;
    st->timeout_ms = timeout_ms;
    st->chunk_units = chunk_units;
    st->bulk_min_bytes = bulk_min_bytes;
    impl_->comms.push_back(HostCommunicator(st.get()));
    impl_->states.push_back(std::move(st));
  }
}

HostGroup::~HostGroup() = default;

HostCommunicator& HostGroup::comm(int rank) {
  if (rank < 0 || rank >= size())
    throw Error(fmt::format("nvrar: host executor: rank {} out of range for {} ranks", rank, size()));
  return impl_->comms[static_cast<std::size_t>(rank)];
}
int HostGroup::size() const { return impl_->topo0.nranks; }
int HostGroup::gpus_per_node() const { return impl_->topo0.gpus_per_node; }
int HostGroup::nodes() const { return impl_->topo0.nodes; }
std::size_t HostGroup::max_bytes() const { return impl_->max_bytes; }

}  // namespace nvrar
