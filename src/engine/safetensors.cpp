// safetensors header parsing and validation, tensor views and 2-D slices (safetensors.h).
#include "engine/safetensors.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/json_input.h"
#include "engine/error.h"

namespace nvrar::engine {

namespace {

using Json = json_input::Json;

// The reference implementation's limit (huggingface/safetensors, MAX_HEADER_SIZE): a larger N is not a header.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
// Most dimensions a tensor may have: safetensors sets none, PyTorch allows 64 (and a model's weights have 1 or 2);
// a bound keeps shape_string() in a message short.
constexpr std::size_t kMaxDims = 64;
// Longest tensor name or metadata key a message quotes (real names are under 100 characters).
constexpr std::size_t kNameChars = 200;

struct DtypeRow {
  TensorDtype dtype;
  const char* name;
  std::size_t size;
};
constexpr DtypeRow kDtypes[] = {
    {TensorDtype::kBool, "BOOL", 1},      {TensorDtype::kU8, "U8", 1},          {TensorDtype::kI8, "I8", 1},
    {TensorDtype::kF8E4M3, "F8_E4M3", 1}, {TensorDtype::kF8E5M2, "F8_E5M2", 1}, {TensorDtype::kI16, "I16", 2},
    {TensorDtype::kU16, "U16", 2},        {TensorDtype::kF16, "F16", 2},        {TensorDtype::kBF16, "BF16", 2},
    {TensorDtype::kI32, "I32", 4},        {TensorDtype::kU32, "U32", 4},        {TensorDtype::kF32, "F32", 4},
    {TensorDtype::kI64, "I64", 8},        {TensorDtype::kU64, "U64", 8},        {TensorDtype::kF64, "F64", 8},
};

const DtypeRow& dtype_row(TensorDtype dtype) {
  for (const DtypeRow& row : kDtypes)
    if (row.dtype == dtype) return row;
  fail("unknown tensor dtype value {}", int(dtype));
}

std::uint64_t read_le64(const std::byte* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | std::uint64_t(p[i]);
  return v;
}

// One entry of the header; `bad` reports an error about this tensor. Numbers go through json_input's checked
// conversions (non-negative integers that fit their type), and the byte count is computed with overflow checks
// before anything compares it with the offsets.
TensorInfo parse_tensor_entry(const std::string& name, const Json& entry, const std::string& path) {
  const std::string shown = json_input::excerpt(name, kNameChars);
  const auto bad = [&](const std::string& why) { fail("{}: tensor '{}': {}", path, shown, why); };
  const std::string where = fmt::format("nvrar-llm: {}: tensor '{}'", path, shown);
  if (!entry.is_object())
    bad(fmt::format("expected an object {{dtype, shape, data_offsets}}, got {}", json_input::describe(entry)));
  TensorInfo t;
  t.name = name;

  const auto dtype = entry.find("dtype");
  if (dtype == entry.end() || !dtype->is_string()) bad("no string 'dtype'");
  const auto parsed = parse_tensor_dtype(dtype->get<std::string>());
  if (!parsed) bad(fmt::format("unsupported dtype '{}'", json_input::excerpt(dtype->get<std::string>())));
  t.dtype = *parsed;

  const auto shape = entry.find("shape");
  if (shape == entry.end() || !shape->is_array()) bad("no array 'shape'");
  if (shape->size() > kMaxDims) bad(fmt::format("shape has {} dimensions (at most {})", shape->size(), kMaxDims));
  for (std::size_t i = 0; i < shape->size(); ++i)
    t.shape.push_back(json_input::to_integer<std::int64_t>((*shape)[i], where, fmt::format("shape[{}]", i), 0));

  const auto offsets = entry.find("data_offsets");
  if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2)
    bad("'data_offsets' must be two non-negative integers [begin, end]");
  t.begin = json_input::to_integer<std::uint64_t>((*offsets)[0], where, "data_offsets[0]");
  t.end = json_input::to_integer<std::uint64_t>((*offsets)[1], where, "data_offsets[1]");
  if (t.end < t.begin) bad(fmt::format("data_offsets [{}, {}] end before they begin", t.begin, t.end));

  const std::int64_t numel = shape_numel(t.shape);
  std::int64_t expected = 0;
  if (numel < 0 || __builtin_mul_overflow(numel, std::int64_t(tensor_dtype_size(t.dtype)), &expected))
    bad(fmt::format("shape {} is too large", shape_string(t.shape)));
  if (t.nbytes() != std::uint64_t(expected))
    bad(fmt::format("data_offsets [{}, {}] hold {} bytes, but shape {} of {} needs {}", t.begin, t.end, t.nbytes(),
                    shape_string(t.shape), tensor_dtype_name(t.dtype), expected));
  return t;
}

}  // namespace

std::size_t tensor_dtype_size(TensorDtype dtype) { return dtype_row(dtype).size; }

const char* tensor_dtype_name(TensorDtype dtype) { return dtype_row(dtype).name; }

std::optional<TensorDtype> parse_tensor_dtype(std::string_view name) {
  for (const DtypeRow& row : kDtypes)
    if (name == row.name) return row.dtype;
  return std::nullopt;
}

SafetensorsHeader parse_safetensors_header(std::span<const std::byte> file, const std::string& path) {
  if (file.size() < 8)
    fail("{}: {} bytes, too short for a safetensors file (it starts with an 8-byte header length)", path, file.size());
  SafetensorsHeader h;
  h.header_size = read_le64(file.data());
  if (h.header_size > file.size() - 8)
    fail("{}: header length {} bytes exceeds the {} bytes after it in the file: truncated, or not a safetensors file",
         path, h.header_size, file.size() - 8);
  if (h.header_size > kMaxHeaderBytes)
    fail("{}: header length {} bytes exceeds safetensors' limit of {}: not a safetensors file", path, h.header_size,
         kMaxHeaderBytes);
  h.data_size = file.size() - 8 - h.header_size;

  const Json root = json_input::parse(
      std::string_view(reinterpret_cast<const char*>(file.data() + 8), h.header_size),
      fmt::format("nvrar-llm: {}: header", path));
  if (!root.is_object()) fail("{}: header is not a JSON object (got {})", path, json_input::describe(root));

  for (const auto& [name, entry] : root.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail("{}: '__metadata__' is not an object (got {})", path, json_input::describe(entry));
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string())
          fail("{}: '__metadata__' entry '{}' is not a string (got {})", path, json_input::excerpt(key, kNameChars),
               json_input::describe(value));
        h.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    TensorInfo t = parse_tensor_entry(name, entry, path);
    if (t.end > h.data_size)
      fail(
          "{}: tensor '{}': data_offsets [{}, {}] run past the end of the data area ({} bytes): the file is "
          "truncated or its header is wrong",
          path, json_input::excerpt(name, kNameChars), t.begin, t.end, h.data_size);
    h.tensors.emplace(name, std::move(t));
  }

  // Overlaps: sorted by start, each non-empty tensor must start at or after the furthest end so far.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& [name, t] : h.tensors)
    if (t.nbytes() > 0) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
  const TensorInfo* furthest = nullptr;
  for (const TensorInfo* t : by_offset) {
    if (furthest && t->begin < furthest->end)
      fail("{}: tensors '{}' (bytes [{}, {})) and '{}' (bytes [{}, {})) overlap", path,
           json_input::excerpt(furthest->name, kNameChars), furthest->begin, furthest->end,
           json_input::excerpt(t->name, kNameChars), t->begin, t->end);
    if (!furthest || t->end > furthest->end) furthest = t;
  }
  return h;
}

const TensorView& expect_tensor(const TensorView& view, TensorDtype dtype, const Shape& shape) {
  if (view.dtype != dtype)
    fail("{}: tensor '{}': dtype {}, expected {}", view.file, view.name, tensor_dtype_name(view.dtype),
         tensor_dtype_name(dtype));
  if (view.shape != shape)
    fail("{}: tensor '{}': shape {}, expected {} (from the model config)", view.file, view.name,
         shape_string(view.shape), shape_string(shape));
  return view;
}

Slice2D slice_2d(const TensorView& view, Axis axis, std::int64_t begin, std::int64_t end) {
  if (view.shape.size() != 2)
    fail("{}: tensor '{}': shape {} is not 2-D, so it has no {} to slice", view.file, view.name,
         shape_string(view.shape), axis_name(axis));
  const std::int64_t rows = view.shape[0];
  const std::int64_t cols = view.shape[1];
  const std::int64_t extent = axis == Axis::kRows ? rows : cols;
  if (begin < 0 || begin > end || end > extent)
    fail("{}: tensor '{}': {} [{}, {}) are not inside its shape {}", view.file, view.name, axis_name(axis), begin, end,
         shape_string(view.shape));
  const std::size_t element = tensor_dtype_size(view.dtype);
  const std::size_t row_bytes = std::size_t(cols) * element;
  Slice2D s;
  if (axis == Axis::kRows) {
    s.first = view.data + std::size_t(begin) * row_bytes;
    s.width_bytes = row_bytes;
    s.height = end - begin;
    s.shape = {end - begin, cols};
  } else {
    s.first = view.data + std::size_t(begin) * element;
    s.width_bytes = std::size_t(end - begin) * element;
    s.height = rows;
    s.shape = {rows, end - begin};
  }
  s.pitch = row_bytes;
  return s;
}

void copy_slice(const TensorView& view, Axis axis, std::int64_t begin, std::int64_t end, std::span<std::byte> out) {
  const Slice2D s = slice_2d(view, axis, begin, end);
  if (out.size() != s.nbytes())
    fail("{}: tensor '{}': {} [{}, {}) are {} bytes, but the destination holds {}", view.file, view.name,
         axis_name(axis), begin, end, s.nbytes(), out.size());
  if (s.pitch == s.width_bytes) {  // whole rows: one contiguous run
    if (s.nbytes() > 0) std::memcpy(out.data(), s.first, s.nbytes());
    return;
  }
  for (std::int64_t i = 0; i < s.height; ++i)
    std::memcpy(out.data() + std::size_t(i) * s.width_bytes, s.first + std::size_t(i) * s.pitch, s.width_bytes);
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path)
    : file_(path), header_(parse_safetensors_header(file_.bytes(), file_.path())) {}

TensorView SafetensorsFile::tensor(std::string_view name) const {
  const auto it = header_.tensors.find(name);
  if (it == header_.tensors.end())
    fail("{}: no tensor '{}' (the file holds {} tensors)", path(), name, header_.tensors.size());
  const TensorInfo& t = it->second;
  return {.file = path(),
          .name = t.name,
          .dtype = t.dtype,
          .shape = t.shape,
          .data = file_.bytes().data() + header_.data_offset() + t.begin,
          .nbytes = std::size_t(t.nbytes())};
}

TensorView SafetensorsFile::expect_tensor(std::string_view name, TensorDtype dtype, const Shape& shape) const {
  TensorView view = tensor(name);
  engine::expect_tensor(view, dtype, shape);
  return view;
}

}  // namespace nvrar::engine
