#include "nvrar/types.h"

#include <iterator>
#include <string>

namespace nvrar {

bool dtype_valid(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32:
    case DataType::kBFloat16:
    case DataType::kFloat16:
      return true;
  }
  return false;
}

std::size_t dtype_size(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32:
      return 4;
    case DataType::kBFloat16:
    case DataType::kFloat16:
      return 2;
  }
  throw Error("nvrar: unsupported dtype value " + std::to_string(static_cast<int>(dtype)));
}

const char* dtype_name(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32:
      return "float32";
    case DataType::kBFloat16:
      return "bfloat16";
    case DataType::kFloat16:
      return "float16";
  }
  return "invalid";
}

namespace {

// Every algorithm's one name (and the older spelling some had), in enum order: the table algorithm_name and
// parse_algorithm read, so a new algorithm is one row here beside its enum value.
struct AlgorithmNames {
  Algorithm id;
  const char* name;
  const char* old_name;  // "" when none
};
constexpr AlgorithmNames kAlgorithmNames[] = {
    {Algorithm::kAuto, "auto", ""},
    {Algorithm::kHierarchical, "hierarchical", "twoshot"},
    {Algorithm::kNccl, "nccl", ""},
    {Algorithm::kOneShot, "oneshot", ""},
    {Algorithm::kRegistered, "registered", "twoshot-registered"},
    {Algorithm::kLl128, "ll128", "twoshot-ll128"},
    {Algorithm::kPush, "push", "twoshot-push"},
};
static_assert(std::size(kAlgorithmNames) == kAlgorithmCount, "one name per Algorithm value");

}  // namespace

const char* algorithm_name(Algorithm a) {
  for (const AlgorithmNames& n : kAlgorithmNames)
    if (n.id == a) return n.name;
  return "invalid";
}

Algorithm parse_algorithm(const std::string& name) {
  std::string known;
  for (const AlgorithmNames& n : kAlgorithmNames) {
    if (name == n.name || (*n.old_name != '\0' && name == n.old_name)) return n.id;
    known += std::string(known.empty() ? "" : ", ") + n.name;
  }
  throw Error("nvrar: unknown algorithm '" + name + "' (" + known + ")");
}

}  // namespace nvrar
