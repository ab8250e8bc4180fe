#include "select/table_source.h"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "nvrar/types.h"

namespace nvrar::select {

FoundTable find_tuning_table(const TableSearch& s) {
  if (!s.file.empty()) {
    TuningTable t = load_tuning_table(s.file);
    if (!t.matches(s.ranks, s.nodes, s.gpus_per_node))
      throw Error(fmt::format("nvrar: tuning table {} is for {} ranks as {} x {}, this job is {} x {}", s.file, t.ranks,
                              t.nodes, t.gpus_per_node, s.nodes, s.gpus_per_node));
    return {std::move(t), s.file};
  }
  for (const std::string& dir : s.directories) {
    std::error_code ec;
    if (dir.empty() || !std::filesystem::is_directory(dir, ec)) continue;
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
      if (entry.path().extension() == ".json") files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const auto& path : files) {
      try {
        TuningTable t = load_tuning_table(path.string());
        if (t.card == s.card && t.matches(s.ranks, s.nodes, s.gpus_per_node)) return {std::move(t), path.string()};
      } catch (const Error&) {
        // Not a tuning table: skip it.
      }
    }
  }
  return {};
}

}  // namespace nvrar::select
