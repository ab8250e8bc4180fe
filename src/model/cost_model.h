// nvrar-model: an alpha-beta cost model of NVRAR and of the all-reduce algorithms it competes with, on a cluster
// described by a preset: P = N nodes x G GPUs, NVLink inside a node, NICs between nodes.
//
// CPU only, no CUDA: nvrar-model (tools/nvrar_model.cpp) prints projections with it, and the tuner asks
// best_algorithm() for a choice where no measured table exists.
//
// The building block of NVRAR's own algorithms is one exchange step (exchange_step_us): a GPU sends one message
// to each of some peers at once and waits for theirs. A link kind costs
//   alpha + max(peers x wire_bytes / bandwidth, wire_bytes / peer_bandwidth) + (peers - 1) x message_us,
// the step costs poll_us (noticing the last flagged cell) plus the slower of the NVLink and network parts, and
// wire_bytes = flag_factor x payload bytes: every 8-byte cell carries 4 bytes of payload and a 4-byte flag
// (core/protocol.h), so each hop moves twice the payload. Every call adds one kernel launch (launch_us).
//
// NCCL's ring and tree follow NCCL's own tuning model (NCCL 2.30 src/graph/tuning.cc, ncclTopoTuneModel and
// ncclTopoGetAlgoTime): per protocol (LL, LL128, Simple) a latency = base + per-hop latencies and a bus bandwidth
// with NCCL's protocol factors and caps; time = latency + bytes / algorithm bandwidth; NCCL runs the fastest
// protocol. What NCCL learns from its topology search (channels, bus bandwidth) is a preset parameter here.
//
// An implementation profile (ImplementationProfile) separates what an implementation of NVRAR's algorithm pays per
// call whatever the algorithm does (kernel launches, host-side calls, pack and unpack copies, costs not pinned down)
// from the algorithm's steps. "ours" is this library (one fused kernel, the cell protocol); "prototype" is the
// published one as its code reads (axonn-ai/yalis at daeecc6: six launches, NVSHMEM's reduce-scatter and fcollect
// inside a node, 8-byte cells of 4 payload bytes + a flag between nodes, separate pack and unpack; src/model/
// profiles.cpp). Network parameters fitted to the prototype's published times (model/calibrate.h,
// calibrate_network) can then be used with our profile. See docs/model.md.
#pragma once

#include <initializer_list>
#include <string>
#include <vector>

namespace nvrar::model {

// One kind of link as one GPU sees it, sending in one direction. Bandwidths in GB/s, 1 GB = 1e9 bytes.
struct LinkParams {
  double alpha_us = 0;            // a step's latency: first byte out to the receiver seeing it (wire, switch, NIC)
  double bandwidth_gbs = 1;       // all of the GPU's links of this kind together
  double peer_bandwidth_gbs = 0;  // most that one peer can take (direct-wired GPUs: the links to it); 0: bandwidth
  double message_us = 0;          // issue cost of each further message in one step (many small puts)

  double beta_us_per_byte() const { return 1e-3 / bandwidth_gbs; }  // 1 GB/s moves 1e3 bytes per microsecond
  double peer_beta_us_per_byte() const {
    return peer_bandwidth_gbs > 0 ? 1e-3 / peer_bandwidth_gbs : beta_us_per_byte();
  }
};

enum class GpuArch { kAmpere, kHopper };
// NCCL's tuning picks its LL bandwidth caps and its network post overhead by CPU vendor (Grace counts as "other").
enum class CpuVendor { kIntel, kAmd, kArm };

// What NCCL's tuning model takes from NCCL's topology search and from the machine.
struct NcclParams {
  GpuArch arch = GpuArch::kHopper;
  CpuVendor cpu = CpuVendor::kIntel;
  int channels = 16;                // rings/trees NCCL runs side by side (only its per-channel caps use it)
  double intra_bus_bw_gbs = 370.8;  // one node: NVLink links x NCCL's per-link bandwidth (src/graph/topo.h)
  double inter_latency_us = 0;      // the net plugin's reported latency (graph latencyInter; 0 for IB verbs)
  bool ll128 = true;                // LL128 enabled (NCCL enables it on NVLink + Ampere/Hopper)
};

struct Preset {
  std::string name;
  std::string description;
  int gpus_per_node = 1;
  int nics_per_node = 1;
  LinkParams intra;        // NVLink, per GPU
  LinkParams inter;        // one NIC
  double launch_us = 0;    // one kernel launch inside a CUDA graph (NVRAR, flat-rd, one-shot, two-shot: 1 each)
  double poll_us = 0;      // per step: seeing the last flagged cell arrive and moving on
  double flag_factor = 2;  // wire bytes per payload byte of NVRAR's cells (kCellBytes / kCellPayloadBytes)
  double memory_bandwidth_gbs = 1000;  // one GPU's HBM, for an implementation's pack/unpack copies
  NcclParams nccl;
  std::vector<std::string> sources;  // where each number comes from, for --list-presets and the README

  // Network bandwidth one GPU gets when all G GPUs of a node send at once: one NIC each, or a share of one.
  double net_bandwidth_per_gpu_gbs() const;
};

// The built-in presets (a100-slingshot11, gh200-ndr400, h100-ndr400), each documented where it is defined.
const std::vector<Preset>& presets();
// The preset of that name; throws nvrar::Error listing the names when there is none.
const Preset& find_preset(const std::string& name);

enum class Algorithm { kNvrar, kNcclRing, kNcclTree, kFlatRecursiveDoubling, kOneShot, kTwoShot };
// Every algorithm, in table order.
const std::vector<Algorithm>& all_algorithms();
// "nvrar", "nccl-ring", "nccl-tree", "flat-rd", "one-shot", "two-shot".
const char* algorithm_name(Algorithm a);

enum class NcclProtocol { kLL = 0, kLL128 = 1, kSimple = 2 };
const char* nccl_protocol_name(NcclProtocol p);  // "LL", "LL128", "Simple"

struct NcclEstimate {
  double time_us = 0;
  NcclProtocol protocol = NcclProtocol::kLL;  // the fastest protocol, the one NCCL would run
};

// NCCL's own estimate for its ring or tree (algorithm must be kNcclRing or kNcclTree) on `nodes` nodes of the
// preset; the fastest enabled protocol. One rank in all: launch_us (a copy).
NcclEstimate predict_nccl(Algorithm algorithm, const Preset& preset, int nodes, double bytes);

// What NCCL runs: the faster of its ring and tree, each at its fastest protocol.
struct NcclPick {
  Algorithm algorithm = Algorithm::kNcclRing;
  NcclEstimate estimate;
  std::string name() const;  // "tree/LL128", "ring/LL", ...
};
NcclPick pick_nccl(const Preset& preset, int nodes, double bytes);

// One exchange step of NVRAR's cell protocol: this GPU sends bytes_per_peer of payload to each of intra_peers
// GPUs of its node and inter_peers GPUs of other nodes at once. See the file comment for the formula.
double exchange_step_us(const Preset& preset, int intra_peers, int inter_peers, double bytes_per_peer);
// The same with another flag factor (wire bytes per payload byte) than the preset's.
double exchange_step_with_flags_us(const Preset& preset, double flag_factor, int intra_peers, int inter_peers,
                                   double bytes_per_peer);

// How an implementation runs NVRAR's three phases, and what it pays per call outside them. Every cost here is per
// call and the same at every node count and size, except the copies (proportional to the message).
struct ImplementationProfile {
  std::string name;
  std::string description;
  int kernel_launches = 1;           // the all-reduce's own kernels per call (a library collective counts as one)
  int harness_launches = 0;          // kernels the measurement's timed loop adds per call (a refill of the input)
  double harness_write_factor = 0;   // bytes those kernels write per message byte
  double host_us = 0;                // host-side work per call that the stream waits for (host-side collectives)
  // The intra-node phases: false = the cell protocol inside the fused kernel; true = a library's reduce-scatter and
  // all-gather (NVSHMEM's). Descriptive: their data movement is the same exchange step, their own synchronisation is
  // part of other_us.
  bool library_intra_collectives = false;
  double copy_factor = 0;            // pack/unpack: GPU-memory bytes read + written per payload byte of the slice M/G
  double intra_flag_factor = 0;      // NVLink wire bytes per payload byte; 0 = the preset's (our cells)
  double net_flag_factor = 0;        // network wire bytes per payload byte; 0 = the preset's
  double other_us = 0;               // per-call cost the code does not pin down (fitted for the prototype)
  std::vector<std::string> sources;
};

// "ours" and "prototype", each documented where it is defined.
const std::vector<ImplementationProfile>& profiles();
const ImplementationProfile& find_profile(const std::string& name);  // throws nvrar::Error listing the names
bool has_profile(const std::string& name);
std::string profile_names();  // "ours, prototype"
// Rejects profiles the formulas cannot use, naming the field.
void validate_profile(const ImplementationProfile& profile);

// NVRAR's cost, phase by phase (the three phases of ARCHITECTURE.md), with the implementation's fixed costs apart.
struct NvrarBreakdown {
  // Fixed costs of the call (the implementation's, whatever the algorithm does).
  double launch_us = 0;          // (kernel + harness launches) x preset.launch_us
  double host_us = 0;            // host-side collectives
  double other_us = 0;           // the profile's unattributed per-call cost
  double pack_us = 0;            // pack/unpack copies and the harness's refill, at HBM bandwidth
  // The algorithm's steps.
  double reduce_scatter_us = 0;  // G - 1 messages of M/G over NVLink (0 when G = 1)
  double fold_us = 0;            // fold-in + fold-out when N is not a power of two (2 steps), else 0
  double doubling_us = 0;        // floor(log2 N) steps of one M/G message over the network
  double all_gather_us = 0;      // as the reduce-scatter
  int doubling_steps = 0;
  int fold_steps = 0;
  double fixed_us() const { return launch_us + host_us + other_us + pack_us; }
  double steps_us() const { return reduce_scatter_us + fold_us + doubling_us + all_gather_us; }
  double total_us() const { return fixed_us() + steps_us(); }
};
// Our implementation ("ours").
NvrarBreakdown nvrar_breakdown(const Preset& preset, int nodes, double bytes);
NvrarBreakdown nvrar_breakdown(const Preset& preset, const ImplementationProfile& profile, int nodes, double bytes);

// Predicted time of one all-reduce of `bytes` bytes on `nodes` nodes x preset.gpus_per_node GPUs, microseconds.
// Throws nvrar::Error for nodes < 1, bytes < 0 or an invalid preset (validate_preset).
double predict_us(Algorithm algorithm, const Preset& preset, int nodes, double bytes);

// Rejects presets the formulas cannot use (non-positive bandwidths or counts, negative latencies), naming the field.
void validate_preset(const Preset& preset);

// The tuner's hook: the fastest of `candidates` by the model. The default set is the choice the runtime has:
// NVRAR or NCCL (whose own tuner then picks ring or tree).
struct Choice {
  Algorithm algorithm = Algorithm::kNvrar;
  double time_us = 0;
};
Choice best_algorithm(const Preset& preset, int nodes, double bytes,
                      std::initializer_list<Algorithm> candidates = {Algorithm::kNvrar, Algorithm::kNcclRing,
                                                                     Algorithm::kNcclTree});

}  // namespace nvrar::model
