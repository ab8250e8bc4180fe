// Evaluates the shared schedule and number conversions on the GPU, so a test can check that the device build
// of core/schedule.h and core/numeric.h agrees bit for bit with the host build the CPU executor uses.
#pragma once

#include <cstdint>
#include <vector>

#include "nvrar/types.h"

namespace nvrar::gpu_check {

// True when a CUDA device can be used (driver present, at least one device).
bool device_available();

struct ScheduleProbe {
  int64_t count;
  int elem_bytes;
  int gpus_per_node;
  int64_t chunk_units;
  int slice;
};
// For each probe: {slice begin, slice end, exchanged units, chunk count, last chunk begin, last chunk end}.
std::vector<int64_t> eval_schedule_on_device(const std::vector<ScheduleProbe>& probes);

// Rounds each float to dtype on the device and returns the raw bits (16-bit types) or float bits (fp32).
std::vector<uint32_t> round_on_device(const std::vector<float>& values, DataType dtype);

}  // namespace nvrar::gpu_check
