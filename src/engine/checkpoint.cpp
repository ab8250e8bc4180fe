// HF checkpoint directories: the safetensors index and lazily mapped shard files (checkpoint.h).
#include "engine/checkpoint.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/json_input.h"
#include "engine/error.h"

namespace nvrar::engine {

namespace {

using Json = json_input::Json;

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";
// Longest tensor or file name a message quotes (real names are under 100 characters).
constexpr std::size_t kNameChars = 200;

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path.string());
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail("{}: error reading", path.string());
  return text.str();
}

}  // namespace

std::map<std::string, std::string, std::less<>> parse_safetensors_index(std::string_view text,
                                                                        const std::string& source) {
  const Json root = json_input::parse(text, "nvrar-llm: " + source);
  const auto map = root.is_object() ? root.find("weight_map") : root.end();
  if (!root.is_object() || map == root.end() || !map->is_object())
    fail("{}: not a safetensors index (no object 'weight_map')", source);
  std::map<std::string, std::string, std::less<>> weight_map;
  for (const auto& [tensor, file] : map->items()) {
    const std::string shown = json_input::excerpt(tensor, kNameChars);
    if (!file.is_string())
      fail("{}: tensor '{}': the file name is not a string ({})", source, shown, json_input::describe(file));
    const std::string name = file.get<std::string>();
    // A shard is a file of the checkpoint directory, never a path elsewhere. A NUL (JSON's \u0000) would cut the
    // name short in the file system's calls: "model.safetensors\u0000.evil" would open model.safetensors.
    // The name is quoted JSON-escaped, so that such characters show.
    if (name.empty() || name.find_first_of(std::string_view("/\0", 2)) != std::string::npos || name == "." ||
        name == "..")
      fail("{}: tensor '{}': {} is not a file name in the checkpoint directory", source, shown,
           json_input::describe(file));
    weight_map.emplace(tensor, name);
  }
  return weight_map;
}

Checkpoint::Checkpoint(const std::filesystem::path& dir) : dir_(dir) {
  const std::filesystem::path index = dir_ / kIndexName;
  const std::filesystem::path single = dir_ / kSingleName;
  if (std::filesystem::exists(index)) {
    index_path_ = index.string();
    weight_map_ = parse_safetensors_index(read_text(index), index_path_);
    // Check every shard now, naming one tensor the index places there, rather than fail midway through a load.
    std::set<std::string> checked;
    for (const auto& [tensor, file] : weight_map_)
      if (checked.insert(file).second && !std::filesystem::is_regular_file(dir_ / file))
        fail("{}: tensor '{}' is in '{}', which does not exist ({})", index_path_, tensor, file,
             (dir_ / file).string());
  } else if (std::filesystem::exists(single)) {
    auto file = std::make_unique<SafetensorsFile>(single);
    for (const auto& [tensor, info] : file->header().tensors) weight_map_.emplace(tensor, kSingleName);
    open_.emplace(kSingleName, std::move(file));
  } else {
    fail("{}: no {} or {}: not a safetensors checkpoint", dir_.string(), kIndexName, kSingleName);
  }
}

Checkpoint::~Checkpoint() = default;
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&&) noexcept = default;

std::string Checkpoint::where() const { return sharded() ? index_path_ : (dir_ / kSingleName).string(); }

std::vector<std::string> Checkpoint::files() const {
  std::set<std::string> files;
  for (const auto& [tensor, file] : weight_map_) files.insert(file);
  return {files.begin(), files.end()};
}

std::vector<std::string> Checkpoint::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(weight_map_.size());
  for (const auto& [tensor, file] : weight_map_) names.push_back(tensor);
  return names;
}

const std::string& Checkpoint::file_for(std::string_view tensor) const {
  const auto it = weight_map_.find(tensor);
  if (it == weight_map_.end()) fail("{}: no tensor '{}' in the checkpoint", where(), tensor);
  return it->second;
}

const SafetensorsFile& Checkpoint::open_file(const std::string& file) {
  auto it = open_.find(file);
  if (it == open_.end()) it = open_.emplace(file, std::make_unique<SafetensorsFile>(dir_ / file)).first;
  return *it->second;
}

TensorView Checkpoint::tensor(std::string_view name) {
  const std::string& file = file_for(name);
  const SafetensorsFile& f = open_file(file);
  if (!f.contains(name)) fail("{}: no tensor '{}', though {} places it in this file", f.path(), name, index_path_);
  return f.tensor(name);
}

TensorView Checkpoint::expect_tensor(std::string_view name, TensorDtype dtype, const Shape& shape) {
  TensorView view = tensor(name);
  engine::expect_tensor(view, dtype, shape);
  return view;
}

}  // namespace nvrar::engine
