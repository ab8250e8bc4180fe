// One safetensors file, memory-mapped and validated: the header parser, tensor views into the mapping, and the
// rows or columns of a 2-D tensor that one tensor-parallel rank loads.
//
// Format (huggingface/safetensors): 8 bytes little-endian N, then N bytes of JSON header, then the data area.
// The header maps each tensor name to {"dtype": "BF16", "shape": [rows, cols], "data_offsets": [begin, end]}
// (byte offsets into the data area, end exclusive, row-major data); an optional "__metadata__" maps strings to
// strings. parse_safetensors_header() checks, before anything is read through a view: the length fits the file,
// the JSON is an object of well-formed entries with known dtypes, every tensor's bytes equal product(shape) x the
// dtype's size, lie inside the data area (so a truncated file is caught here) and overlap no other tensor.
//
// Every error is an nvrar::Error naming the file and, where one is at fault, the tensor:
//   nvrar-llm: /ckpt/model-00002-of-00004.safetensors: tensor 'model.layers.9.mlp.up_proj.weight':
//   data_offsets [117440512, 234881024] run past the end of the data area (150000000 bytes): ...
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "engine/mapped_file.h"
#include "engine/shape.h"

namespace nvrar::engine {

// Element types of the safetensors format (its sub-byte types are not supported).
enum class TensorDtype {
  kBool,
  kU8,
  kI8,
  kF8E4M3,
  kF8E5M2,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kI64,
  kU64,
  kF64
};
std::size_t tensor_dtype_size(TensorDtype dtype);
const char* tensor_dtype_name(TensorDtype dtype);  // as the header spells it: "BF16", "F8_E4M3", ...
std::optional<TensorDtype> parse_tensor_dtype(std::string_view name);

// Where a tensor lives: [begin, end) bytes of the data area.
struct TensorInfo {
  std::string name;
  TensorDtype dtype = TensorDtype::kBF16;
  Shape shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;

  std::uint64_t nbytes() const { return end - begin; }
};

struct SafetensorsHeader {
  std::uint64_t header_size = 0;  // N, the JSON's bytes
  std::uint64_t data_size = 0;    // bytes after the header
  std::map<std::string, std::string> metadata;
  std::map<std::string, TensorInfo, std::less<>> tensors;

  std::uint64_t data_offset() const { return 8 + header_size; }  // of the data area in the file
};

// Parses and validates the header at the start of `file` (the whole file's bytes); `path` names it in errors.
SafetensorsHeader parse_safetensors_header(std::span<const std::byte> file, const std::string& path);

// A tensor in a mapped file. `data` points into the mapping: nothing is read until it is touched.
struct TensorView {
  std::string file;
  std::string name;
  TensorDtype dtype = TensorDtype::kBF16;
  Shape shape;
  const std::byte* data = nullptr;
  std::size_t nbytes = 0;
};

// Error naming view.file and view.name unless the tensor has this dtype and shape (what the model config says
// the weight must be). Returns the view.
const TensorView& expect_tensor(const TensorView& view, TensorDtype dtype, const Shape& shape);

// Rows or columns [begin, end) of a 2-D tensor, in place in the mapping: `height` runs of `width_bytes` bytes,
// `pitch` bytes apart (a cudaMemcpy2D's source). In a row slice the runs are whole rows (pitch == width_bytes),
// so the slice is one contiguous block.
struct Slice2D {
  const std::byte* first = nullptr;
  std::size_t pitch = 0;
  std::size_t width_bytes = 0;
  std::int64_t height = 0;
  Shape shape;  // the slice as a tensor: {end - begin, columns} or {rows, end - begin}

  std::size_t nbytes() const { return width_bytes * std::size_t(height); }
};
// Error naming the tensor when it is not 2-D or [begin, end) is not inside its dimension `axis`.
Slice2D slice_2d(const TensorView& view, Axis axis, std::int64_t begin, std::int64_t end);
// Copies that slice, row-major and packed, into `out`, which must be exactly its size; only the slice's bytes
// (and the pages holding them) are read.
void copy_slice(const TensorView& view, Axis axis, std::int64_t begin, std::int64_t end, std::span<std::byte> out);

class SafetensorsFile {
 public:
  // Maps and validates `path` (errors as above).
  explicit SafetensorsFile(const std::filesystem::path& path);

  const std::string& path() const { return file_.path(); }
  const SafetensorsHeader& header() const { return header_; }
  bool contains(std::string_view name) const { return header_.tensors.find(name) != header_.tensors.end(); }
  // Error naming the file and the tensor when it is not in this file. The view is valid while this object lives.
  TensorView tensor(std::string_view name) const;
  // tensor(name) checked against the dtype and shape the model expects.
  TensorView expect_tensor(std::string_view name, TensorDtype dtype, const Shape& shape) const;

 private:
  MappedFile file_;
  SafetensorsHeader header_;
};

}  // namespace nvrar::engine
