// An HF checkpoint directory: which safetensors file holds each tensor, and views of the tensors.
//
// Two layouts: one model.safetensors, or shards listed by model.safetensors.index.json, whose "weight_map" maps
// each tensor name to the file that holds it ({"metadata": {"total_size": ...}, "weight_map": {...}}). Opening a
// checkpoint reads only the index (or the single file's header) and checks that every file the index names
// exists; a shard file is mapped on the first request for one of its tensors, so a rank that needs few tensors of
// a file touches little more than their pages.
//
// Errors name the index or safetensors file and the tensor: a tensor the checkpoint lacks, a file the index names
// that does not exist, a tensor the index places in a file that does not hold it, and the header, dtype and shape
// errors of safetensors.h.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/safetensors.h"

namespace nvrar::engine {

// The "weight_map" of a model.safetensors.index.json text; `source` names it in errors.
std::map<std::string, std::string, std::less<>> parse_safetensors_index(std::string_view text,
                                                                        const std::string& source);

class Checkpoint {
 public:
  // `dir` holds model.safetensors.index.json (sharded) or model.safetensors (one file); Error when it has neither.
  explicit Checkpoint(const std::filesystem::path& dir);
  ~Checkpoint();
  Checkpoint(Checkpoint&&) noexcept;
  Checkpoint& operator=(Checkpoint&&) noexcept;

  const std::filesystem::path& directory() const { return dir_; }
  bool sharded() const { return !index_path_.empty(); }
  // The safetensors file names, sorted.
  std::vector<std::string> files() const;
  // Every tensor name, sorted.
  std::vector<std::string> tensor_names() const;
  bool contains(std::string_view tensor) const { return weight_map_.find(tensor) != weight_map_.end(); }
  // The file (name within the directory) that holds `tensor`; Error naming the index and the tensor if none.
  const std::string& file_for(std::string_view tensor) const;

  // Maps the tensor's file on first use; the view stays valid while the Checkpoint lives. Not thread-safe: a rank
  // loads from one thread.
  TensorView tensor(std::string_view name);
  TensorView expect_tensor(std::string_view name, TensorDtype dtype, const Shape& shape);

 private:
  const SafetensorsFile& open_file(const std::string& file);
  std::string where() const;  // the index path, or the single file's path

  std::filesystem::path dir_;
  std::string index_path_;                                        // empty for a single model.safetensors
  std::map<std::string, std::string, std::less<>> weight_map_;    // tensor -> file name
  std::map<std::string, std::unique_ptr<SafetensorsFile>> open_;  // file name -> mapped file
};

}  // namespace nvrar::engine
