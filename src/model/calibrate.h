// Calibration of the cost model (model/cost_model.h) from nvrar-bench JSON reports (tools/bench/report.cpp).
//
// calibrate() uses single-node runs with G >= 2 only: there the inter-node parameters play no part, so the
// intra-node ones can be read off the measurements. Runs with several nodes go to the network fit
// (network_points_from_bench, then calibrate_network) where every node is a host of its own ("hosts" = nodes); runs
// with several virtual nodes on one host are skipped: their "inter-node" steps ran over NVLink, not a network.
//  - NVRAR's NVLink link (intra.alpha_us, intra.message_us, intra.bandwidth_gbs) from the "hierarchical" rows (the
//    forced kernel; "nvrar" rows when there are none): one node costs
//      launch + 2 (poll + alpha + (G-2) message) + 2 f (M/G) max(G-1, r) beta    (r = bandwidth / peer bandwidth),
//    linear in (alpha, message, beta): weighted least squares on relative error. The per-message cost needs runs
//    with two or more GPU counts; latencies that fit below zero are pinned at zero.
//  - NCCL's one-node bus bandwidth (nccl.intra_bus_bw_gbs) from the "nccl" rows: the one parameter of NCCL's model
//    that its topology search, not its tuning tables, sets; a 1-D search minimising the squared relative error.
#pragma once

#include <string>
#include <vector>

#include "model/cost_model.h"

namespace nvrar::model {

// One row of a report, with the run's shape.
struct BenchPoint {
  std::string algorithm;
  int nodes = 1;
  int gpus_per_node = 1;
  double bytes = 0;
  double time_us = 0;
};

struct BenchReport {
  std::string origin;  // file name (or what the caller called the text), for messages
  std::string device;
  int ranks = 1;
  int nodes = 1;
  int gpus_per_node = 1;
  int hosts = 0;  // distinct hosts of the run ("hosts", written by nvrar-bench since issue 19); 0: not recorded
  std::vector<BenchPoint> points;
};

// Parses an nvrar-bench JSON report. Throws nvrar::Error naming `origin` and the missing or malformed field.
BenchReport parse_bench_report(const std::string& json_text, const std::string& origin);
// Reads and parses a report file; throws nvrar::Error naming the file when it cannot be read.
BenchReport read_bench_report(const std::string& path);

struct FitQuality {
  int points = 0;
  double rms_relative = 0;  // sqrt(mean(((model - measured) / measured)^2))
  double max_relative = 0;  // largest |model - measured| / measured
  double worst_bytes = 0;   // where the largest error is
  int worst_gpus = 0;
};

struct Calibration {
  bool intra_fitted = false;
  std::string intra_algorithm;  // the rows the NVLink link was fitted to
  double intra_alpha_us = 0;
  double intra_message_us = 0;
  double intra_bandwidth_gbs = 0;
  FitQuality intra_fit;
  bool nccl_fitted = false;
  double nccl_intra_bus_bw_gbs = 0;
  FitQuality nccl_fit;
  std::vector<std::string> notes;  // what was skipped or clamped, and why
};

struct CalibrationOptions {
  double min_bytes = 0;
  // Fits stop at 4 MiB by default: the decode range, and below where the hierarchical kernel loses bandwidth.
  double max_bytes = 4.0 * 1024 * 1024;
};

// Fits the intra-node parameters of `preset` to the reports' single-node rows and writes them into it.
// Parameters without usable rows are left as they were (a note says so). Throws nvrar::Error when a fit is
// degenerate (e.g. all points at one size).
Calibration calibrate(const std::vector<BenchReport>& reports, Preset& preset, const CalibrationOptions& options = {});

// ---- published measurements (someone else's implementation on a real network) ----
//
// A JSON file of published all-reduce times, e.g. tests/data/published_yalis_perlmutter_nvrar.json:
//   {"kind": "published-allreduce-times", "source": {"repository": ..., "file": ..., "commit": ..., "date": ...},
//    "system": ..., "device": ..., "preset": "a100-slingshot11", "profile": "prototype", "algorithm": "nvrar",
//    "nodes": 4, "gpus_per_node": 4, "dtype": "bf16", "results": [{"bytes": 8192, "time_us": 62.2}, ...],
//    "sweep": {"rule": "yalis-ll8", "rows": [{"bytes": 8192, "num_blocks": 1, "chunk_bytes": 4096,
//              "time_us": 63.97}, ...]}}
// "results" are the times the fit and --validate use (the best launch shape per size); the optional "sweep" is every
// launch shape the authors' tuner timed, whose serial chunk rounds (sweep_rounds) identify the network's latency.
// The profile names the implementation that was measured (model/cost_model.h, profiles()).

// One launch shape of a sweep: thread blocks and the tuner's chunk parameter, at one size.
struct SweepPoint {
  double bytes = 0;
  int blocks = 1;
  double chunk_bytes = 0;
  double time_us = 0;
};

struct PublishedPoints {
  std::string origin;  // file name, for messages
  std::string source;  // "repository, file, commit, date" as the file names them
  std::string system;
  std::string device;
  std::string preset;
  std::string profile;
  std::string algorithm;  // "nvrar" (the only one the network fit uses) or "nccl" (validated only)
  int nodes = 1;
  int gpus_per_node = 1;
  int dtype_bytes = 0;     // from "dtype" (bf16 2, fp32 4, ...); 0 when the file names none
  std::string sweep_rule;  // how the measured kernel turns a launch shape into rounds ("yalis-ll8")
  std::vector<SweepPoint> sweep;
  std::vector<BenchPoint> points;
};

// True when the text is a JSON object whose "kind" is "published-allreduce-times" (else it is taken for a bench
// report). Never throws.
bool is_published_points(const std::string& json_text);
PublishedPoints parse_published_points(const std::string& json_text, const std::string& origin);
PublishedPoints read_published_points(const std::string& path);

// Serial chunk rounds per network step of one thread block in the published prototype's LL8 kernel (rule
// "yalis-ll8"; axonn-ai/yalis at daeecc6, yalis/custom_comm/csrc/src/nvshmem_comm/ll8_coll.cu): the GPU's slice of
// M/G bytes travels in 8-byte cells of 4 payload bytes, split evenly (integer division) over the blocks; the tuner's
// chunk parameter c, divided by G, is taken as a count of elements, so a chunk is max(32, c / G / (4 / dtype_bytes))
// cells; a block puts one chunk and waits for its partner's before the next. Throws nvrar::Error for a dtype wider
// than 4 bytes or non-positive arguments.
long long sweep_rounds(double bytes, int gpus_per_node, int dtype_bytes, int blocks, double chunk_bytes);

struct NetworkCalibration {
  bool fitted = false;
  std::string profile;
  double alpha_us = 0;            // inter.alpha_us
  double bandwidth_gbs = 0;       // inter.bandwidth_gbs (one NIC)
  FitQuality fit;
  // From a launch-shape sweep: what one more serial chunk round adds to a network step (poll + alpha), read off the
  // sweep's rows at the same size and block count; then alpha = round latency - poll, and the profile's per-call
  // other_us is fitted with the bandwidth instead.
  bool sweep_used = false;
  double round_latency_us = 0;
  int sweep_points = 0;
  int sweep_groups = 0;
  double sweep_rms_relative = 0;  // the sweep's rows against group means + rounds x round latency
  bool other_fitted = false;
  double other_us = 0;            // the profile's other_us, fitted
  std::vector<std::string> notes;
};

// Fits the network link (inter.alpha_us, inter.bandwidth_gbs) of `preset` to the published NVRAR points of runs with
// two or more nodes, with each file's implementation profile, and writes them into it. NCCL's net latency
// (nccl.inter_latency_us, what NCCL's tuner adds per network hop beyond InfiniBand verbs) is NCCL's own and is left
// as the preset has it: NVRAR's times say nothing about NCCL's path through the network (a published speedup range
// fits it, model/published_speedup.h). Only the preset's GPUs per node are used. When a file carries a
// launch-shape sweep, alpha comes from it and the profile's other_us is fitted with the bandwidth (all files of the
// fit must then share one profile); else alpha and the bandwidth are fitted with the profile as shipped. A latency or
// cost that fits below zero is pinned at zero. Throws nvrar::Error when the points cannot separate the terms.
NetworkCalibration calibrate_network(const std::vector<PublishedPoints>& published, Preset& preset,
                                     const CalibrationOptions& options = {});

// The rows of nvrar-bench reports of multi-node runs (nodes > 1, every node a host of its own: "hosts" = nodes) as
// points for calibrate_network with our implementation's profile ("ours"): the forced kernel's "hierarchical" rows of
// each report ("nvrar" rows where it has none; those above NVRAR's range ran NCCL, so keep --calibrate-max-bytes
// within it). The intra-node parameters the network fit builds on are the preset's (fitted first by calibrate() when
// single-node reports are given too). Reports that cannot be used (one node, hosts not recorded or fewer than nodes,
// no such rows) add a note saying why.
std::vector<PublishedPoints> network_points_from_bench(const std::vector<BenchReport>& reports,
                                                       std::vector<std::string>& notes);

// Model vs published for one point: the model with the file's profile and the preset as given.
struct ValidationRow {
  std::string origin;
  std::string profile;
  int nodes = 1;
  int gpus_per_node = 1;
  double bytes = 0;
  double published_us = 0;
  double model_us = 0;
  double relative_error() const { return (model_us - published_us) / published_us; }
};
// The profile is the file's as shipped (profiles()); with a calibration that fitted other_us, that profile's other_us
// is the fitted one.
std::vector<ValidationRow> validate_against(const std::vector<PublishedPoints>& published, const Preset& preset,
                                            const NetworkCalibration* calibration = nullptr);

}  // namespace nvrar::model
