// Public vocabulary shared by every NVRAR entry point: element types, errors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace nvrar {

// Element types of an all-reduce. Reduction is always a sum accumulated in fp32.
enum class DataType : int { kFloat32 = 0, kBFloat16 = 1, kFloat16 = 2 };

// Bytes per element; throws nvrar::Error for a value outside the enum (e.g. from the C API).
std::size_t dtype_size(DataType dtype);
// "float32", "bfloat16", "float16" (the names nccl-tests prints are in the bench tool).
const char* dtype_name(DataType dtype);
// True for the three types above.
bool dtype_valid(DataType dtype);

// Every failure NVRAR reports is an nvrar::Error whose message names the rank, the call and the cause,
// e.g. "nvrar: rank 3 allreduce: count 9000000 exceeds the communicator's capacity of 8388608 elements".
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace nvrar
