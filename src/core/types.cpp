#include "nvrar/types.h"

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

const char* algorithm_name(Algorithm a) {
  switch (a) {
    case Algorithm::kAuto:
      return "auto";
    case Algorithm::kHierarchical:
      return "hierarchical";
    case Algorithm::kNccl:
      return "nccl";
    case Algorithm::kOneShot:
      return "oneshot";
    case Algorithm::kRegistered:
      return "registered";
    case Algorithm::kLl128:
      return "ll128";
    case Algorithm::kPush:
      return "push";
  }
  return "invalid";
}

Algorithm parse_algorithm(const std::string& name) {
  if (name == "auto") return Algorithm::kAuto;
  if (name == "hierarchical" || name == "twoshot") return Algorithm::kHierarchical;
  if (name == "nccl") return Algorithm::kNccl;
  if (name == "oneshot") return Algorithm::kOneShot;
  if (name == "registered" || name == "twoshot-registered") return Algorithm::kRegistered;
  if (name == "ll128" || name == "twoshot-ll128") return Algorithm::kLl128;
  if (name == "push" || name == "twoshot-push") return Algorithm::kPush;
  throw Error("nvrar: unknown algorithm '" + name +
              "' (auto, hierarchical, twoshot, oneshot, registered, ll128, push, nccl)");
}

}  // namespace nvrar
