// Fuzz target: the safetensors header (engine/safetensors.h, parse_safetensors_header) on a whole file's bytes.
//
// Beyond "no crash, only nvrar::Error naming the file": a header the parser accepts must keep its promises, so
// every tensor is checked against the input's bounds and read through the loader's own views (a row and a column
// slice of each 2-D tensor, copied): a tensor the parser let run past the data would show up as an ASan
// heap-buffer-overflow here, where a real load would read past a mapping.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/safetensors.h"
#include "fuzz_check.h"

namespace {

constexpr const char* kOrigin = "fuzz/model.safetensors";
// Bytes copied per slice at most: enough to touch both ends of a slice, small enough to keep runs fast.
constexpr std::size_t kMaxCopy = 1 << 16;

using nvrar::engine::Axis;

void read_back(const nvrar::engine::SafetensorsHeader& header, const std::byte* file, std::size_t size) {
  for (const auto& [name, info] : header.tensors) {
    FUZZ_EXPECT(info.begin <= info.end, "tensor '" + name + "': begin after end");
    FUZZ_EXPECT(header.data_offset() <= size && info.end <= size - header.data_offset(),
                "tensor '" + name + "': data_offsets outside the input");
    FUZZ_EXPECT(info.nbytes() == std::uint64_t(nvrar::engine::shape_numel(info.shape)) *
                                     nvrar::engine::tensor_dtype_size(info.dtype),
                "tensor '" + name + "': byte count disagrees with shape x dtype");
    const nvrar::engine::TensorView view{kOrigin, name, info.dtype, info.shape,
                                         file + header.data_offset() + info.begin, std::size_t(info.nbytes())};
    if (view.shape.size() != 2 || view.shape[0] == 0 || view.shape[1] == 0) continue;
    // The last row and the last column: the slices that end at the tensor's last byte.
    for (const Axis axis : {Axis::kRows, Axis::kColumns}) {
      const std::int64_t extent = view.shape[axis == Axis::kRows ? 0 : 1];
      const nvrar::engine::Slice2D slice = nvrar::engine::slice_2d(view, axis, extent - 1, extent);
      if (slice.nbytes() > kMaxCopy) continue;
      std::vector<std::byte> out(slice.nbytes());
      nvrar::engine::copy_slice(view, axis, extent - 1, extent, out);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto* file = reinterpret_cast<const std::byte*>(data);
  try {
    const nvrar::engine::SafetensorsHeader header = nvrar::engine::parse_safetensors_header({file, size}, kOrigin);
    read_back(header, file, size);
  } catch (const nvrar::Error& e) {
    nvrar::fuzz::expect_names_origin(e, kOrigin);
  }
  return 0;
}
