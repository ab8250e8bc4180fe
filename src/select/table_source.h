// Which tuning table a communicator uses: Options::tuning_file, else NVRAR_TUNING_FILE, else the first table in
// NVRAR_TUNING_DIR (default: the tables shipped with NVRAR, in the source tree and the install prefix) measured on
// this card for this topology; else none, and the cost model decides.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "select/tuning_table.h"

namespace nvrar::select {

struct TableSearch {
  std::string file;                      // Options::tuning_file, else NVRAR_TUNING_FILE ("": search)
  std::vector<std::string> directories;  // NVRAR_TUNING_DIR, else the shipped tables' folders
  std::string card;                      // cudaDeviceProp::name
  int ranks = 0;
  int nodes = 0;
  int gpus_per_node = 0;
};

struct FoundTable {
  std::optional<TuningTable> table;
  std::string file;  // where it came from ("" when none)
};

// Throws nvrar::Error when an explicitly named file cannot be read, is not a table, or is for another topology.
// In the search, files that are not tables or do not match are skipped; files are tried in name order, so every
// rank finds the same one.
FoundTable find_tuning_table(const TableSearch& search);

}  // namespace nvrar::select
