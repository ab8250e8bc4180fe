#include "gpu/algorithms/registry.h"

namespace nvrar::gpu {

// Each entry's factory, defined in its <name>_entry.cpp.
std::unique_ptr<AllreduceAlgorithm> make_hierarchical_algorithm();
std::unique_ptr<AllreduceAlgorithm> make_oneshot_algorithm();
std::unique_ptr<AllreduceAlgorithm> make_registered_algorithm();
std::unique_ptr<AllreduceAlgorithm> make_ll128_algorithm();
std::unique_ptr<AllreduceAlgorithm> make_push_algorithm();

std::vector<std::unique_ptr<AllreduceAlgorithm>> make_algorithms() {
  std::vector<std::unique_ptr<AllreduceAlgorithm>> all;
  all.push_back(make_hierarchical_algorithm());  // the order is the order of their symmetric allocations
  all.push_back(make_oneshot_algorithm());
  all.push_back(make_registered_algorithm());
  all.push_back(make_ll128_algorithm());
  all.push_back(make_push_algorithm());
  return all;
}

}  // namespace nvrar::gpu
