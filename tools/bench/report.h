// nvrar-bench output: the nccl-tests table (so that tables from NCCL and from us can be compared by eye), a
// side-by-side summary when several algorithms ran, and JSON for plots and the tuner.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/backend.h"
#include "nvrar/types.h"

namespace nvrar::bench {

// Everything the header and the JSON say about the run as a whole.
struct RunInfo {
  std::string backend;
  std::string device;
  int ranks = 1;
  int nodes = 1;
  int gpus_per_node = 1;
  int hosts = 1;  // distinct hosts: nodes == hosts means every node is a machine of its own (real network)
  DataType dtype = DataType::kBFloat16;
  std::size_t min_bytes = 0;
  std::size_t max_bytes = 0;
  std::size_t step_factor = 2;
  RunConfig config;
  std::vector<std::string> algorithms;
  std::vector<std::string> notes;
};

// One row of the table.
struct Result {
  std::string algorithm;
  std::size_t bytes = 0;
  std::size_t count = 0;
  double time_us = 0;
  double algbw_gbs = 0;  // bytes / time
  double busbw_gbs = 0;  // algbw x 2(n-1)/n: the all-reduce's per-rank link traffic, comparable across n
  std::size_t wrong = 0;
  bool checked = false;
};

// Type names as nccl-tests prints them: "float", "bfloat16", "half".
const char* nccl_type_name(DataType dtype);
Result make_result(const std::string& algorithm, std::size_t count, DataType dtype, int ranks, const Measurement& m);

// Streaming table: header once, then per algorithm a section of rows as they are measured and its footer.
void print_header(std::FILE* out, const RunInfo& info);
void print_section_begin(std::FILE* out, const std::string& algorithm);
void print_row(std::FILE* out, const RunInfo& info, const Result& r);
// Footer over the section's rows: out-of-bounds count (OK/FAILED) and average bus bandwidth.
void print_section_end(std::FILE* out, const std::vector<Result>& rows);
// Time per algorithm for each size, then each algorithm's time over the first algorithm's; nothing for one
// algorithm.
void print_summary(std::FILE* out, const RunInfo& info, const std::vector<Result>& results);

// ISO-8601 UTC, e.g. "2025-06-01T12:34:56Z".
std::string iso8601_utc_now();
// Writes the JSON report; throws nvrar::Error naming the file when it cannot be written.
void write_json(const std::string& path, const RunInfo& info, const std::vector<Result>& results,
                const std::string& date);

}  // namespace nvrar::bench
