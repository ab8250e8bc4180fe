// nvrar-bench on the CPU executor: one nvrar::HostGroup, each rank a thread of this process.
//
// Its times measure the schedule and protocol on shared memory, with threads usually outnumbering cores; they
// are for comparing changes to the CPU executor, never for comparing with GPU numbers.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "bench/backend.h"
#include "nvrar/host_executor.h"

namespace nvrar::bench {

// Small sizes and few calls: every rank thread spins on shared memory, usually on far fewer cores than ranks.
BackendDefaults host_backend_defaults();

class HostBackend : public Backend {
 public:
  explicit HostBackend(const BackendOptions& options);

  // The names run() accepts (all of them on every group), with their --help text.
  static std::vector<AlgorithmName> algorithm_names();

  std::string name() const override { return "host"; }
  std::string device() const override;
  int ranks() const override { return group_->size(); }
  int gpus_per_node() const override { return group_->gpus_per_node(); }
  int nodes() const override { return group_->nodes(); }
  std::size_t max_bytes() const override { return group_->max_bytes(); }
  std::vector<std::string> algorithms() const override;
  bool is_root() const override { return true; }
  std::vector<std::string> notes() const override;

  Measurement run(const std::string& algorithm, std::size_t count, DataType dtype, const RunConfig& config) override;

 private:
  std::unique_ptr<HostGroup> group_;
  std::size_t heap_bytes_per_rank_ = 0;
  // Per-rank input and output buffers, grown to the largest message run so far.
  std::vector<std::vector<std::byte>> inputs_;
  std::vector<std::vector<std::byte>> outputs_;
};

}  // namespace nvrar::bench
