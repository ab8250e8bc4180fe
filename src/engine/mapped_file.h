// A whole file mapped read-only into memory (POSIX mmap). Checkpoint files are tens of GB: mapping them costs
// nothing until a page is touched, so a rank that copies only its shard of a tensor reads only those pages.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>

namespace nvrar::engine {

class MappedFile {
 public:
  // Maps `path`; Error naming the file when it cannot be opened, examined or mapped. An empty file maps to an
  // empty span (mmap cannot map zero bytes).
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  std::span<const std::byte> bytes() const { return {data_, size_}; }
  std::size_t size() const { return size_; }

 private:
  void unmap();

  std::string path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace nvrar::engine
