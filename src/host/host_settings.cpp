#include "host/host_settings.h"

#include <cstdio>
#include <exception>
#include <filesystem>
#include <mutex>
#include <string>

#include <fmt/format.h>

#include "nvrar/types.h"
#include "select/tuning_table.h"

namespace nvrar::host {

namespace {

// The GPU communicator's settings, which the CPU executor does not read: it always runs the hierarchical algorithm,
// one thread per rank, chunked by NVRAR_HOST_CHUNK_UNITS. One that is set (differs from its default) is named once
// per process on stderr, with why it does not apply, instead of being silently ignored.
using config::Settings;
struct NotApplied {
  const char* name;
  bool (*set)(const Settings& s, const Settings& defaults);
  const char* why;
};

constexpr NotApplied kNotApplied[] = {
    {"NVRAR_ALGO", [](const Settings& s, const Settings& d) { return s.algo != d.algo; },
     "the CPU executor runs the hierarchical algorithm only"},
    {"NVRAR_TUNING_FILE", [](const Settings& s, const Settings& d) { return s.tuning_file != d.tuning_file; },
     "tuning tables choose among the GPU kernels; the CPU executor runs the hierarchical algorithm only"},
    {"NVRAR_TUNING_DIR", [](const Settings& s, const Settings& d) { return s.tuning_dir != d.tuning_dir; },
     "tuning tables choose among the GPU kernels; the CPU executor runs the hierarchical algorithm only"},
    {"NVRAR_MODEL_PRESET", [](const Settings& s, const Settings& d) { return s.model_preset != d.model_preset; },
     "the cost model chooses among the GPU kernels; the CPU executor runs the hierarchical algorithm only"},
    {"NVRAR_CHUNK_UNITS", [](const Settings& s, const Settings& d) { return s.chunk_units != d.chunk_units; },
     "it sizes the GPU kernel's chunks; the CPU executor's are NVRAR_HOST_CHUNK_UNITS"},
    {"NVRAR_MAX_BLOCKS", [](const Settings& s, const Settings& d) { return s.max_blocks != d.max_blocks; },
     "the CPU executor runs one thread per rank, no thread blocks"},
    {"NVRAR_BULK_SYNC", [](const Settings& s, const Settings& d) { return s.bulk_sync != d.bulk_sync; },
     "it picks the GPU's memory fences; the CPU transport orders its own stores"},
    {"NVRAR_REGISTERED_MIN_BYTES",
     [](const Settings& s, const Settings& d) { return s.registered_min_bytes != d.registered_min_bytes; },
     "the CPU executor has no registered buffers"},
    {"NVRAR_REGISTERED_OVER_LL128_BYTES",
     [](const Settings& s, const Settings& d) {
       return s.registered_over_ll128_bytes != d.registered_over_ll128_bytes;
     },
     "the CPU executor has no registered buffers"},
    {"NVRAR_PUSH_PIECE_UNITS",
     [](const Settings& s, const Settings& d) { return s.push_piece_units != d.push_piece_units; },
     "the CPU executor has no push two-shot"},
    {"NVRAR_PDL", [](const Settings& s, const Settings& d) { return s.pdl != d.pdl; }, "it is a GPU launch option"},
    {"NVRAR_POLL_SLEEP_NS", [](const Settings& s, const Settings& d) { return s.poll_sleep_ns != d.poll_sleep_ns; },
     "it paces the GPU's polls; the CPU executor's waits yield the thread"},
    {"NVRAR_INTER_NODE_STORES",
     [](const Settings& s, const Settings& d) { return s.inter_node_stores != d.inter_node_stores; },
     "the CPU executor has no NVLink peer pointers"},
};

}  // namespace

// Refuses a setting the CPU executor does not use but that is broken (a tuning file that is missing or not a valid
// table, a tuning folder that is not a folder): the same environment would fail on a GPU, and a typo must not pass
// unnoticed here. Then names, once per process, every set one that does not apply.
void check_unused_settings(const Settings& settings) {
  if (!settings.tuning_file.empty()) {
    try {
      (void)select::load_tuning_table(settings.tuning_file);
    } catch (const std::exception& e) {
      throw Error(fmt::format("nvrar: host executor: environment variable NVRAR_TUNING_FILE='{}' is refused: {}",
                              settings.tuning_file, e.what()));
    }
  }
  if (!settings.tuning_dir.empty() && !std::filesystem::is_directory(settings.tuning_dir))
    throw Error(fmt::format("nvrar: host executor: environment variable NVRAR_TUNING_DIR='{}' is not a folder",
                            settings.tuning_dir));
  static std::once_flag once;
  std::call_once(once, [&settings] {
    const Settings defaults = config::read_settings([](const char*) -> const char* { return nullptr; });
    for (const NotApplied& n : kNotApplied)
      if (n.set(settings, defaults))
        std::fprintf(stderr, "nvrar: host executor: %s is set but does not apply to the CPU executor (%s); ignored\n",
                     n.name, n.why);
  });
}

}  // namespace nvrar::host
