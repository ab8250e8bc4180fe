// Fuzz target: model.safetensors.index.json (engine/checkpoint.h, parse_safetensors_index) as text.
// An accepted index names only files of the checkpoint directory, as the parser promises: a file name that is
// empty, ".", "..", holds a '/' or a NUL (which the file system APIs would cut short) is a finding, since
// Checkpoint would open a directory or a file elsewhere. (An empty tensor name is legal JSON and harmless: no
// weight has that name, so it is never looked up.)
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/checkpoint.h"
#include "fuzz_check.h"

namespace {
constexpr const char* kOrigin = "fuzz/model.safetensors.index.json";
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto weight_map = nvrar::engine::parse_safetensors_index(nvrar::fuzz::as_text(data, size), kOrigin);
    for (const auto& [tensor, file] : weight_map) {
      const bool in_directory = !file.empty() && file != "." && file != ".." &&
                                file.find_first_of(std::string("/\0", 2)) == std::string::npos;
      FUZZ_EXPECT(in_directory, "tensor '" + tensor + "': accepted the file name '" + file + "'");
    }
  } catch (const nvrar::Error& e) {
    nvrar::fuzz::expect_names_origin(e, kOrigin);
  }
  return 0;
}
