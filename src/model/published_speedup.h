// A published speedup range and NCCL's own per-hop network cost fitted to it (issue 22).
//
// NCCL's tuning model (model/cost_model.h, predict_nccl) knows NCCL's constants for InfiniBand verbs; on another
// network its net plugin reports an extra latency per network hop (nccl.inter_latency_us, NCCL's graph
// latencyInter). Nothing in a published all-reduce time of NVRAR says what that is for NCCL. A paper that measured
// both does, as a ratio: tests/data/published_paper_nccl_ratio.json holds the NVRAR paper's statement (arXiv
// 2511.09557: NVRAR up to 1.9x-3.6x lower latency than NCCL at 128 KB - 2 MB on Slingshot and InfiniBand) as
//   {"kind": "published-speedup-range", "source": {"title": ..., "arxiv": ..., "authors": [...], "statement": ...},
//    "faster": {"algorithm": "nvrar", "profile": "prototype"}, "slower": {"algorithm": "nccl"},
//    "min_bytes": 131072, "max_bytes": 2097152, "ratio_min": 1.9, "ratio_max": 3.6, "systems": [...]}
// and the ratio is taken against the faster side's published times (published-allreduce-times files of that
// algorithm and profile, model/calibrate.h): NCCL's modelled time / the published time, at each published size
// inside the window, at that file's node count.
//
// The rule (fit_nccl_net_latency) reads "up to" as the paper says it: 1.9x and 3.6x are each system's BEST speedup
// over the sizes it measured (one system reached 1.9x, the other 3.6x; the abstract does not say which), not a floor
// that every size reaches. For each range and each published times file paired with it, NCCL's per-hop cost must be
// large enough that the file's LARGEST ratio over its sizes inside the window reaches the range's lower bound; sizes
// below the bound are allowed. NCCL's modelled time only grows with the per-hop cost when there are two or more nodes
// (every protocol's latency term adds it per network hop, its bandwidth term does not depend on it; the best of ring
// and tree is a minimum of non-decreasing functions), so each size has one smallest cost that reaches the bound
// (found by bisection); the file's cost is the smallest of its sizes' (the first size to reach the bound becomes its
// best), and nccl.inter_latency_us is the largest over files and ranges, so that every file's best ratio reaches its
// bound. That is the smallest NCCL per-hop cost the statement allows, and so the smallest speedups over NCCL.
// The upper bound is checked, not fitted: every ratio must stay at or below ratio_max (so each file's best ratio lies
// in [ratio_min, ratio_max]); the fit reports the largest cost that keeps every ratio at or below it, and when that is
// below the rule's value no single per-hop cost meets the ranges (a note says so and --validate fails). The network
// itself (alpha, NIC bandwidth) is the two-stage fit's (calibrate_network) and is not touched.
#pragma once

#include <string>
#include <vector>

#include "model/calibrate.h"
#include "model/cost_model.h"

namespace nvrar::model {

struct PublishedSpeedupRange {
  std::string origin;     // file name, for messages
  std::string source;     // "title, arXiv id, first author et al." as the file names them
  std::string statement;  // the claim, in the file's words
  std::string faster_algorithm;  // "nvrar"
  std::string faster_profile;    // the implementation the paper measured ("prototype")
  std::string slower_algorithm;  // "nccl": the model's best of ring and tree
  double min_bytes = 0;
  double max_bytes = 0;
  double ratio_min = 1;  // slower / faster
  double ratio_max = 1;
  std::vector<std::string> systems;
};

// True when the text is a JSON object whose "kind" is "published-speedup-range". Never throws.
bool is_published_speedup_range(const std::string& json_text);
// Throws nvrar::Error naming `origin` and the missing or malformed field.
PublishedSpeedupRange parse_published_speedup_range(const std::string& json_text, const std::string& origin);
PublishedSpeedupRange read_published_speedup_range(const std::string& path);

// One published size inside a range's window: the faster side's published time, NCCL's modelled time (best of ring
// and tree, with the preset as given) and their ratio.
struct SpeedupRow {
  std::string range_origin;  // the range file
  std::string times_origin;  // the published times file
  int nodes = 1;
  int gpus_per_node = 1;
  double bytes = 0;
  double published_us = 0;  // the faster side's, published
  double nccl_us = 0;       // modelled
  std::string nccl_pick;    // "tree/LL128", ...
  double ratio_min = 1;
  double ratio_max = 1;
  bool best = false;  // the largest ratio of its range and times file (the first such size on a tie)
  double ratio() const { return nccl_us / published_us; }
  bool above_max() const { return !(ratio() <= ratio_max); }  // NaN counts as above
  // What the range asks of this size: at most ratio_max, and at least ratio_min when it is its file's best.
  bool ok() const { return !above_max() && (!best || ratio() >= ratio_min); }
};

// One range against one published times file: the file's best ratio and how many of its ratios pass the upper bound.
struct SpeedupCheck {
  std::string range_origin;
  std::string times_origin;
  int nodes = 1;
  int gpus_per_node = 1;
  int sizes = 0;
  double best_bytes = 0;
  double best_ratio = 0;
  double ratio_min = 1;
  double ratio_max = 1;
  int above_max = 0;
  bool best_within() const { return best_ratio >= ratio_min && best_ratio <= ratio_max; }
  bool ok() const { return best_within() && above_max == 0; }
};

// The rows of every range against every published times file of its faster side (algorithm and profile), two or
// more nodes, sizes inside the window, each file's best marked. Files that do not pair are skipped; `notes` (when
// given) says which and why.
std::vector<SpeedupRow> speedup_rows(const std::vector<PublishedSpeedupRange>& ranges,
                                     const std::vector<PublishedPoints>& published, const Preset& preset,
                                     std::vector<std::string>* notes = nullptr);
// The rows grouped by range and times file, in their order.
std::vector<SpeedupCheck> speedup_checks(const std::vector<SpeedupRow>& rows);

struct NcclCalibration {
  bool fitted = false;
  double inter_latency_us = 0;  // the rule's value, written into preset.nccl.inter_latency_us
  double binding_bytes = 0;     // the best size of the file that needs it
  int binding_nodes = 0;
  std::string binding_origin;   // that file
  double upper_latency_us = 0;  // the largest per-hop cost with every ratio <= its range's upper bound
  bool consistent = false;      // every check ok at the fitted value (so upper_latency_us >= inter_latency_us)
  std::vector<SpeedupRow> rows;  // at the fitted value
  std::vector<SpeedupCheck> checks;
  std::vector<std::string> notes;
};

// Fits preset.nccl.inter_latency_us by the rule above and writes it into the preset. A file whose best ratio already
// reaches the lower bound at zero cost needs none; a file none of whose sizes can reach it below kMaxNcclNetLatencyUs
// is an error naming the range, the file and its node count. Without pairable rows nothing is fitted (a note says
// why).
NcclCalibration fit_nccl_net_latency(const std::vector<PublishedSpeedupRange>& ranges,
                                     const std::vector<PublishedPoints>& published, Preset& preset);

// Largest per-hop cost the fit searches: one second per network hop, far beyond any network.
inline constexpr double kMaxNcclNetLatencyUs = 1e6;

}  // namespace nvrar::model
