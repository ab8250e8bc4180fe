// Fuzz target: a tuning table (select/tuning_table.h, parse_tuning_table) as JSON text.
//
// An accepted table must survive what the runtime and nvrar-bench do with it: it is written back
// (tuning_table_json) and re-read to the same fingerprint, which every rank compares; merged; and looked up at
// sizes around each entry's bound (the merged table must choose the same algorithm as the table).
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include "fuzz_check.h"
#include "select/tuning_table.h"

namespace {
constexpr const char* kOrigin = "fuzz/tuning.json";
constexpr const char* kRewritten = "fuzz/tuning-rewritten.json";

// What runs a call of `bytes`: past the last entry, NCCL (merging drops trailing NCCL entries for that reason).
std::string choice(const nvrar::select::TuningTable& table, std::int64_t bytes) {
  const nvrar::select::TuningEntry* entry = table.lookup(bytes);
  return entry == nullptr ? "nccl" : entry->algorithm;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  nvrar::select::TuningTable table;
  try {
    table = nvrar::select::parse_tuning_table(std::string(nvrar::fuzz::as_text(data, size)), kOrigin);
  } catch (const nvrar::Error& e) {
    nvrar::fuzz::expect_names_origin(e, kOrigin);
    return 0;
  }
  try {
    const nvrar::select::TuningTable again =
        nvrar::select::parse_tuning_table(nvrar::select::tuning_table_json(table), kRewritten);
    FUZZ_EXPECT(again.fingerprint() == table.fingerprint(), "the rewritten table has another fingerprint");
  } catch (const nvrar::Error& e) {
    FUZZ_EXPECT(false, std::string("an accepted table does not re-read: ") + e.what());
  }
  const nvrar::select::TuningTable merged = nvrar::select::merge_equal_neighbours(table);
  for (const nvrar::select::TuningEntry& entry : table.entries) {
    for (const std::int64_t bytes : {entry.max_bytes - 1, entry.max_bytes, entry.max_bytes + 1}) {
      if (bytes < 0) continue;
      FUZZ_EXPECT(choice(table, bytes) == choice(merged, bytes),
                  "merging changed the algorithm at " + std::to_string(bytes) + " bytes");
    }
  }
  table.lookup(std::numeric_limits<std::int64_t>::max());
  return 0;
}
