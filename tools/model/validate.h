// nvrar-model --validate: the model against every published file it is given (tools/nvrar_model.cpp calls it).
// Published all-reduce times (tests/data/published_*.json of kind "published-allreduce-times") are compared point by
// point with the model, each within a relative bound; published speedup ranges ("published-speedup-range",
// model/published_speedup.h) are checked as NCCL's modelled time over the faster side's published time at every
// published size inside the range: each file's best ratio within the range ("up to"), no ratio above its upper bound.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "model/calibrate.h"
#include "model/cost_model.h"
#include "model/published_speedup.h"

namespace nvrar::model_tool {

namespace model = nvrar::model;

// A file's text; throws nvrar::Error naming the file when it cannot be read.
std::string read_text(const std::string& path);

// What --calibrate fitted before the comparison (each may be null), for the header.
struct Fits {
  const model::Calibration* intra = nullptr;
  const model::NetworkCalibration* network = nullptr;
  const model::NcclCalibration* nccl = nullptr;
};

// Prints the comparison of the preset with every file (published times and speedup ranges, told apart by their
// "kind") and returns how many checks failed: points beyond `bound`, ratios above their range's upper bound and best
// ratios below its lower bound.
int print_validation(std::FILE* out, const model::Preset& preset, const std::vector<std::string>& files, double bound,
                     const Fits& fits);

}  // namespace nvrar::model_tool
