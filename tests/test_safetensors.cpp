// The safetensors loader (src/engine/safetensors.h, checkpoint.h) on small files this test writes into a temporary
// directory with hand-built headers: a valid file (views, row and column slices), a sharded checkpoint with its
// index, a rank copying its tensor-parallel shards, and every error case, each message checked to name the file
// and the tensor at fault.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/llama_weights.h"
#include "engine/model_config.h"
#include "engine/safetensors.h"
#include "engine/sharding.h"
#include "engine_test_support.h"
#include "nvrar/types.h"

namespace nvrar::engine {
namespace {

using Json = nlohmann::json;
using test_support::error_of;

// Builds a safetensors file: tensors are laid out back to back, and element k of each (row-major) holds the
// integer k + base in the dtype's width (little-endian), so a slice can be checked element by element.
class Builder {
 public:
  Builder& add(const std::string& name, TensorDtype dtype, const Shape& shape, std::uint64_t base = 0) {
    const std::size_t size = tensor_dtype_size(dtype);
    const std::uint64_t begin = data_.size();
    for (std::int64_t k = 0; k < shape_numel(shape); ++k)
      for (std::size_t b = 0; b < size; ++b) data_.push_back(std::byte((std::uint64_t(k) + base) >> (8 * b)));
    header_[name] = {{"dtype", tensor_dtype_name(dtype)}, {"shape", shape}, {"data_offsets", {begin, data_.size()}}};
    return *this;
  }
  Json& header() { return header_; }
  std::vector<std::byte>& data() { return data_; }

  // Writes 8-byte length + header + data; `declared` replaces the true header length, `raw_header` the JSON.
  void write(const std::filesystem::path& path, std::optional<std::uint64_t> declared = std::nullopt,
             std::optional<std::string> raw_header = std::nullopt) const {
    const std::string text = raw_header ? *raw_header : header_.dump();
    const std::uint64_t n = declared ? *declared : text.size();
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 8; ++i) out.put(char(n >> (8 * i)));
    out << text;
    out.write(reinterpret_cast<const char*>(data_.data()), std::streamsize(data_.size()));
  }

 private:
  Json header_ = Json::object();
  std::vector<std::byte> data_;
};

// Element i of a buffer of 2-byte integers.
std::uint16_t u16(const std::byte* p, std::size_t i) {
  std::uint16_t v;
  std::memcpy(&v, p + 2 * i, 2);
  return v;
}

class Safetensors : public test_support::TempDirTest {
 protected:
  // A file with a 4 x 6 BF16 matrix "w", a 6-element F32 vector "norm" and metadata.
  static Builder small() {
    Builder b;
    b.add("w", TensorDtype::kBF16, {4, 6}).add("norm", TensorDtype::kF32, {6}, 100);
    b.header()["__metadata__"] = {{"format", "pt"}};
    return b;
  }

  // Writes `b` as `name`, opens it and returns the error message (naming the file is checked here).
  std::string open_error(const Builder& b, const std::string& name, std::optional<std::uint64_t> declared = {},
                         std::optional<std::string> raw = {}) {
    const std::filesystem::path path = dir_ / name;
    b.write(path, declared, raw);
    const std::string m = error_of([&] { SafetensorsFile file(path); });
    EXPECT_HAS(m, path.string());
    return m;
  }
};

TEST_F(Safetensors, ValidFile) {
  small().write(dir_ / "model.safetensors");
  const SafetensorsFile file(dir_ / "model.safetensors");
  EXPECT_EQ(file.header().metadata.at("format"), "pt");
  EXPECT_EQ(file.header().tensors.size(), 2u);
  EXPECT_TRUE(file.contains("w"));
  EXPECT_FALSE(file.contains("__metadata__"));

  const TensorView w = file.expect_tensor("w", TensorDtype::kBF16, {4, 6});
  EXPECT_EQ(w.file, file.path());
  EXPECT_EQ(w.nbytes, 48u);
  for (std::size_t k = 0; k < 24; ++k) EXPECT_EQ(u16(w.data, k), k);
  const TensorView norm = file.expect_tensor("norm", TensorDtype::kF32, {6});
  EXPECT_EQ(norm.data, w.data + 48);  // right after w in the data area
  std::uint32_t first;
  std::memcpy(&first, norm.data, 4);
  EXPECT_EQ(first, 100u);
}

TEST_F(Safetensors, RowAndColumnSlices) {
  small().write(dir_ / "m.safetensors");
  const SafetensorsFile file(dir_ / "m.safetensors");
  const TensorView w = file.tensor("w");

  // Rows [1, 3): one contiguous block.
  const Slice2D rows = slice_2d(w, Axis::kRows, 1, 3);
  EXPECT_EQ(rows.first, w.data + 12);
  EXPECT_EQ(rows.shape, (Shape{2, 6}));
  EXPECT_EQ(rows.pitch, rows.width_bytes);
  std::vector<std::byte> out(rows.nbytes());
  copy_slice(w, Axis::kRows, 1, 3, out);
  for (std::size_t k = 0; k < 12; ++k) EXPECT_EQ(u16(out.data(), k), 6 + k);

  // Columns [2, 5): 4 runs of 3 elements, a row (12 bytes) apart.
  const Slice2D cols = slice_2d(w, Axis::kColumns, 2, 5);
  EXPECT_EQ(cols.first, w.data + 4);
  EXPECT_EQ(cols.pitch, 12u);
  EXPECT_EQ(cols.width_bytes, 6u);
  EXPECT_EQ(cols.height, 4);
  EXPECT_EQ(cols.shape, (Shape{4, 3}));
  out.assign(cols.nbytes(), std::byte{0});
  copy_slice(w, Axis::kColumns, 2, 5, out);
  for (std::size_t r = 0; r < 4; ++r)
    for (std::size_t c = 0; c < 3; ++c) EXPECT_EQ(u16(out.data(), r * 3 + c), r * 6 + c + 2) << r << "," << c;

  // Errors name the file and the tensor.
  std::string m = error_of([&] { slice_2d(w, Axis::kColumns, 4, 7); });
  EXPECT_HAS(m, file.path());
  EXPECT_HAS(m, "tensor 'w'");
  EXPECT_HAS(m, "columns [4, 7)");
  m = error_of([&] { slice_2d(file.tensor("norm"), Axis::kRows, 0, 1); });
  EXPECT_HAS(m, "tensor 'norm'");
  EXPECT_HAS(m, "not 2-D");
  std::vector<std::byte> small_out(5);
  m = error_of([&] { copy_slice(w, Axis::kRows, 0, 1, small_out); });
  EXPECT_HAS(m, "tensor 'w'");
  EXPECT_HAS(m, "destination holds 5");
}

TEST_F(Safetensors, ShorterThanTheLengthField) {
  const std::filesystem::path path = dir_ / "tiny.safetensors";
  std::ofstream(path, std::ios::binary) << "abc";
  const std::string m = error_of([&] { SafetensorsFile file(path); });
  EXPECT_HAS(m, path.string());
  EXPECT_HAS(m, "3 bytes, too short");
}

TEST_F(Safetensors, HeaderLengthBeyondTheFile) {
  std::string m = open_error(small(), "absurd.safetensors", std::uint64_t(1) << 40);
  EXPECT_HAS(m, "header length 1099511627776 bytes exceeds");
  // A file cut inside its header.
  Builder b = small();
  const std::string text = b.header().dump();
  b.data().clear();
  m = open_error(b, "cut_header.safetensors", std::nullopt, text.substr(0, text.size() / 2));
  EXPECT_HAS(m, "not valid JSON");
  m = open_error(b, "cut_header2.safetensors", text.size(), text.substr(0, text.size() / 2));
  EXPECT_HAS(m, "exceeds");
}

TEST_F(Safetensors, BadJson) {
  std::string m = open_error(small(), "bad.safetensors", std::nullopt, std::string("{\"w\": {\"dtype\": "));
  EXPECT_HAS(m, "not valid JSON");
  m = open_error(small(), "array.safetensors", std::nullopt, std::string("[1, 2, 3]"));
  EXPECT_HAS(m, "not a JSON object");
  Builder b = small();
  b.header()["__metadata__"] = {{"format", 3}};
  EXPECT_HAS(open_error(b, "meta.safetensors"), "'__metadata__'");
  b = small();
  b.header()["w"].erase("shape");
  m = open_error(b, "noshape.safetensors");
  EXPECT_HAS(m, "tensor 'w'");
  EXPECT_HAS(m, "'shape'");
}

TEST_F(Safetensors, TruncatedData) {
  Builder b = small();
  b.data().resize(b.data().size() - 10);  // the last 10 bytes of "norm" are missing
  const std::string m = open_error(b, "truncated.safetensors");
  EXPECT_HAS(m, "tensor 'norm'");
  EXPECT_HAS(m, "truncated");
  EXPECT_HAS(m, "(62 bytes)");
}

TEST_F(Safetensors, OffsetsOutsideTheDataArea) {
  Builder b = small();
  b.header()["w"]["data_offsets"] = {1000, 1048};  // the right size, in the wrong place
  const std::string m = open_error(b, "outside.safetensors");
  EXPECT_HAS(m, "tensor 'w'");
  EXPECT_HAS(m, "data_offsets [1000, 1048] run past the end of the data area (72 bytes)");
}

TEST_F(Safetensors, OverlappingOffsets) {
  Builder b = small();
  b.header()["v"] = {{"dtype", "BF16"}, {"shape", {2, 6}}, {"data_offsets", {24, 48}}};  // inside "w"
  const std::string m = open_error(b, "overlap.safetensors");
  EXPECT_HAS(m, "tensors 'w' (bytes [0, 48)) and 'v' (bytes [24, 48)) overlap");
}

TEST_F(Safetensors, SizeDisagreesWithShapeOrDtype) {
  Builder b = small();
  b.header()["w"]["shape"] = {4, 5};
  std::string m = open_error(b, "size.safetensors");
  EXPECT_HAS(m, "tensor 'w'");
  EXPECT_HAS(m, "hold 48 bytes, but shape [4, 5] of BF16 needs 40");
  b = small();
  b.header()["w"]["dtype"] = "Q4_K";
  m = open_error(b, "dtype.safetensors");
  EXPECT_HAS(m, "tensor 'w'");
  EXPECT_HAS(m, "unsupported dtype 'Q4_K'");
  b = small();
  b.header()["w"]["data_offsets"] = {48, 0};
  EXPECT_HAS(open_error(b, "backwards.safetensors"), "end before they begin");
}

TEST_F(Safetensors, MissingTensorWrongDtypeWrongShape) {
  // A one-layer model whose q_proj was saved with the wrong shape and whose k_proj is F32.
  const ModelConfig config = parse_config_json(
      R"({"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
          "num_key_value_heads": 1, "vocab_size": 10})",
      "tiny/config.json");
  const std::string q = checkpoint_tensor_name(config, Weight::kQProj, 0);
  const std::string k = checkpoint_tensor_name(config, Weight::kKProj, 0);
  Builder b;
  b.add(q, TensorDtype::kBF16, {8, 4}).add(k, TensorDtype::kF32, weight_shape(config, Weight::kKProj));
  const std::filesystem::path path = dir_ / "model.safetensors";
  b.write(path);
  Checkpoint ckpt(dir_);
  EXPECT_FALSE(ckpt.sharded());
  EXPECT_EQ(ckpt.files(), std::vector<std::string>{"model.safetensors"});

  std::string m = error_of([&] { ckpt.expect_tensor(q, TensorDtype::kBF16, weight_shape(config, Weight::kQProj)); });
  EXPECT_HAS(m, path.string());
  EXPECT_HAS(m, "tensor 'model.layers.0.self_attn.q_proj.weight': shape [8, 4], expected [8, 8]");
  m = error_of([&] { ckpt.expect_tensor(k, TensorDtype::kBF16, weight_shape(config, Weight::kKProj)); });
  EXPECT_HAS(m, path.string());
  EXPECT_HAS(m, "tensor 'model.layers.0.self_attn.k_proj.weight': dtype F32, expected BF16");
  const std::string v = checkpoint_tensor_name(config, Weight::kVProj, 0);
  m = error_of([&] { ckpt.tensor(v); });
  EXPECT_HAS(m, path.string());
  EXPECT_HAS(m, "no tensor 'model.layers.0.self_attn.v_proj.weight'");
  const SafetensorsFile file(path);
  m = error_of([&] { file.tensor("lm_head.weight"); });
  EXPECT_HAS(m, path.string());
  EXPECT_HAS(m, "no tensor 'lm_head.weight'");
}

// Two shards and their index, as HF writes them.
class SafetensorsSharded : public Safetensors {
 protected:
  void SetUp() override {
    Safetensors::SetUp();
    Builder first;
    first.add("a", TensorDtype::kBF16, {2, 3}).add("b", TensorDtype::kBF16, {3});
    first.write(dir_ / "model-00001-of-00002.safetensors");
    Builder second;
    second.add("c", TensorDtype::kBF16, {4, 2}, 7);
    second.write(dir_ / "model-00002-of-00002.safetensors");
    index_ = {{"metadata", {{"total_size", 34}}},
              {"weight_map",
               {{"a", "model-00001-of-00002.safetensors"},
                {"b", "model-00001-of-00002.safetensors"},
                {"c", "model-00002-of-00002.safetensors"}}}};
    write_index();
  }
  void write_index() { std::ofstream(dir_ / "model.safetensors.index.json") << index_.dump(); }
  std::string index_path() const { return (dir_ / "model.safetensors.index.json").string(); }

  Json index_;
};

TEST_F(SafetensorsSharded, FindsEachTensorInItsFile) {
  Checkpoint ckpt(dir_);
  EXPECT_TRUE(ckpt.sharded());
  EXPECT_EQ(ckpt.files(),
            (std::vector<std::string>{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}));
  EXPECT_EQ(ckpt.tensor_names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ckpt.file_for("c"), "model-00002-of-00002.safetensors");
  const TensorView c = ckpt.expect_tensor("c", TensorDtype::kBF16, {4, 2});
  EXPECT_EQ(c.file, (dir_ / "model-00002-of-00002.safetensors").string());
  EXPECT_EQ(u16(c.data, 0), 7);
  EXPECT_EQ(u16(c.data, 7), 14);
  EXPECT_EQ(ckpt.expect_tensor("a", TensorDtype::kBF16, {2, 3}).nbytes, 12u);
  const std::string m = error_of([&] { ckpt.file_for("d"); });
  EXPECT_HAS(m, index_path());
  EXPECT_HAS(m, "no tensor 'd'");
}

TEST_F(SafetensorsSharded, MapsAShardOnlyWhenOneOfItsTensorsIsAskedFor) {
  // A corrupt second shard does not stop a rank that needs only the first; asking for "c" reports it.
  Builder broken = Builder().add("c", TensorDtype::kBF16, {4, 2});
  broken.data().resize(3);
  broken.write(dir_ / "model-00002-of-00002.safetensors");
  Checkpoint ckpt(dir_);
  EXPECT_EQ(ckpt.tensor("a").shape, (Shape{2, 3}));
  const std::string m = error_of([&] { ckpt.tensor("c"); });
  EXPECT_HAS(m, (dir_ / "model-00002-of-00002.safetensors").string());
  EXPECT_HAS(m, "tensor 'c'");
  EXPECT_HAS(m, "truncated");
}

TEST_F(SafetensorsSharded, IndexNamesAMissingFile) {
  index_["weight_map"]["d"] = "model-00003-of-00002.safetensors";
  write_index();
  const std::string m = error_of([&] { Checkpoint ckpt(dir_); });
  EXPECT_HAS(m, index_path());
  EXPECT_HAS(m, "tensor 'd' is in 'model-00003-of-00002.safetensors', which does not exist");
}

TEST_F(SafetensorsSharded, IndexPlacesATensorInTheWrongFile) {
  index_["weight_map"]["c"] = "model-00001-of-00002.safetensors";
  write_index();
  Checkpoint ckpt(dir_);
  const std::string m = error_of([&] { ckpt.tensor("c"); });
  EXPECT_HAS(m, (dir_ / "model-00001-of-00002.safetensors").string());
  EXPECT_HAS(m, "no tensor 'c'");
  EXPECT_HAS(m, index_path());
}

TEST_F(SafetensorsSharded, BadIndex) {
  std::ofstream(dir_ / "model.safetensors.index.json") << "{\"weight_map\": ";
  std::string m = error_of([&] { Checkpoint ckpt(dir_); });
  EXPECT_HAS(m, index_path());
  EXPECT_HAS(m, "not valid JSON");
  std::ofstream(dir_ / "model.safetensors.index.json") << R"({"metadata": {}})";
  EXPECT_HAS(error_of([&] { Checkpoint ckpt(dir_); }), "no object 'weight_map'");
  std::ofstream(dir_ / "model.safetensors.index.json") << R"({"weight_map": {"a": "../elsewhere.safetensors"}})";
  m = error_of([&] { Checkpoint ckpt(dir_); });
  EXPECT_HAS(m, "tensor 'a'");
  EXPECT_HAS(m, "not a file name in the checkpoint directory");
}

// Issue 21: hostile headers give an error naming the file (and the tensor and field), never a crash (dump() of a
// deeply nested value recursed ~65k frames), a bare nlohmann exception or an unchecked size.
TEST_F(Safetensors, HostileHeaders) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const auto header_error = [&](const std::string& name, const std::string& header) {
    return open_error(small(), name, std::nullopt, header);
  };
  EXPECT_HAS(header_error("deep.safetensors", std::string(200000, '[')), ": header: JSON nested deeper than 64 levels");
  EXPECT_HAS(header_error("deep_entry.safetensors", "{\"w\": " + deep + "}"),
             ": header: JSON nested deeper than 64 levels");
  EXPECT_HAS(header_error("deep_meta.safetensors", "{\"__metadata__\": {\"a\": " + deep + "}}"),
             ": header: JSON nested deeper than 64 levels");
  EXPECT_HAS(header_error("inf.safetensors", R"({"w": {"dtype": "BF16", "shape": [1e999], "data_offsets": [0, 2]}})"),
             ": header: JSON number '1e999' is out of the range of a double");
  EXPECT_HAS(header_error("inf2.safetensors", R"({"w": {"dtype": "BF16", "shape": [1], "data_offsets": [0, 1e400]}})"),
             "JSON number '1e400'");

  const auto entry_error = [&](const std::string& name, const std::string& shape, const std::string& offsets) {
    return header_error(name, R"({"w": {"dtype": "BF16", "shape": )" + shape + R"(, "data_offsets": )" + offsets + "}}");
  };
  EXPECT_HAS(entry_error("neg.safetensors", "[-1, 4]", "[0, 8]"),
             "tensor 'w': field 'shape[0]': -1 is out of range (0 to 9223372036854775807)");
  EXPECT_HAS(entry_error("float.safetensors", "[4, 1e30]", "[0, 8]"), "tensor 'w': field 'shape[1]': 1e+30 is out of range");
  EXPECT_HAS(entry_error("frac.safetensors", "[4.5]", "[0, 8]"), "tensor 'w': field 'shape[0]': expected an integer, got 4.5");
  EXPECT_HAS(entry_error("str.safetensors", "[\"4\"]", "[0, 8]"),
             "tensor 'w': field 'shape[0]': wrong type: expected an integer, got the string \"4\"");
  EXPECT_HAS(entry_error("u64.safetensors", "[4]", "[0, 18446744073709551616]"),
             "tensor 'w': field 'data_offsets[1]': 1.8446744073709552e+19 is out of range (0 to 18446744073709551615)");
  EXPECT_HAS(entry_error("negoff.safetensors", "[4]", "[-8, 0]"), "tensor 'w': field 'data_offsets[0]': -8 is out of range");
  // Products checked before use: 2^62 x 4 elements overflow int64, 2^61 x 4 BF16 bytes too.
  EXPECT_HAS(entry_error("numel.safetensors", "[4611686018427387904, 4]", "[0, 8]"),
             "tensor 'w': shape [4611686018427387904, 4] is too large");
  EXPECT_HAS(entry_error("bytes.safetensors", "[2305843009213693952, 4]", "[0, 8]"),
             "tensor 'w': shape [2305843009213693952, 4] is too large");
  std::string dims = "[1";
  for (int i = 1; i < 65; ++i) dims += ", 1";
  EXPECT_HAS(entry_error("dims.safetensors", dims + "]", "[0, 2]"),
             "tensor 'w': shape has 65 dimensions (at most 64)");
  // Values of the wrong kind are described in a few words, not written out.
  EXPECT_HAS(header_error("arr.safetensors", "{\"w\": [[[[[[1]]]]]]}"),
             "tensor 'w': expected an object {dtype, shape, data_offsets}, got an array of 1 values");
  const std::string long_meta = header_error("meta.safetensors", "{\"__metadata__\": {\"a\": [\"" +
                                                                      std::string(100000, 'm') + "\"]}}");
  EXPECT_HAS(long_meta, "'__metadata__' entry 'a' is not a string (got an array of 1 values)");
  EXPECT_LT(long_meta.size(), 400u);
}

TEST_F(SafetensorsSharded, HostileIndex) {
  const auto index_error = [&](const std::string& text) {
    std::ofstream(dir_ / "model.safetensors.index.json") << text;
    const std::string m = error_of([&] { Checkpoint ckpt(dir_); });
    EXPECT_HAS(m, index_path());
    return m;
  };
  EXPECT_HAS(index_error(std::string(200000, '[')), index_path() + ": JSON nested deeper than 64 levels");
  EXPECT_HAS(index_error("{\"weight_map\": {\"a\": " + std::string(100000, '[') + std::string(100000, ']') + "}}"),
             index_path() + ": JSON nested deeper than 64 levels");
  EXPECT_HAS(index_error(R"({"metadata": {"total_size": 1e999}, "weight_map": {}})"),
             index_path() + ": JSON number '1e999' is out of the range of a double");
  EXPECT_HAS(index_error(R"({"weight_map": {"a": [["x"]]}})"),
             "tensor 'a': the file name is not a string (an array of 1 values)");
  EXPECT_HAS(index_error(R"({"weight_map": [1]})"), "not a safetensors index (no object 'weight_map')");
  // Found by fuzz/fuzz_safetensors_index.cpp: a NUL would cut the name short to an existing file.
  EXPECT_HAS(index_error(R"({"weight_map": {"a": "model-00001-of-00002.safetensors\u0000.evil"}})"),
             R"(tensor 'a': the string "model-00001-of-00002.safetensors\u0000.evil" is not a file name in the checkpoint)");
}

TEST_F(Safetensors, DirectoryWithoutWeights) {
  const std::string m = error_of([&] { Checkpoint ckpt(dir_); });
  EXPECT_HAS(m, dir_.string());
  EXPECT_HAS(m, "not a safetensors checkpoint");
}

// Each of two ranks copies its tensor-parallel pieces of a tiny layer straight from the mapped file and gets
// exactly the rows (q_proj, vocabulary-parallel embed_tokens) or columns (o_proj) the sharding assigns it.
TEST_F(Safetensors, RanksCopyTheirShards) {
  const ModelConfig config = parse_config_json(
      R"({"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 4,
          "num_key_value_heads": 2, "vocab_size": 10})",
      "tiny/config.json");
  Builder b;
  for (const Weight w : {Weight::kEmbedTokens, Weight::kQProj, Weight::kOProj})
    b.add(checkpoint_tensor_name(config, w, 0), TensorDtype::kBF16, weight_shape(config, w));
  b.write(dir_ / "model.safetensors");
  Checkpoint ckpt(dir_);
  for (std::int64_t rank = 0; rank < 2; ++rank) {
    const TpRank tp = tp_rank(config, 2, rank);
    for (const Weight w : {Weight::kEmbedTokens, Weight::kQProj, Weight::kOProj}) {
      const Shape full = weight_shape(config, w);
      const WeightShard shard = weight_shard(config, tp, w);
      ASSERT_TRUE(shard.split.has_value());
      const TensorView view = ckpt.expect_tensor(checkpoint_tensor_name(config, w, 0), TensorDtype::kBF16, full);
      std::vector<std::byte> out(std::size_t(shape_numel(shard.shape)) * 2);
      copy_slice(view, *shard.split, shard.range.begin, shard.range.end, out);
      for (std::int64_t r = 0; r < shard.shape[0]; ++r)
        for (std::int64_t c = 0; c < shard.shape[1]; ++c) {
          const std::int64_t row = *shard.split == Axis::kRows ? shard.range.begin + r : r;
          const std::int64_t col = *shard.split == Axis::kColumns ? shard.range.begin + c : c;
          EXPECT_EQ(u16(out.data(), std::size_t(r * shard.shape[1] + c)), row * full[1] + col)
              << weight_name(w) << " rank " << rank;
        }
    }
  }
}

}  // namespace
}  // namespace nvrar::engine
