// Implementation profiles of the cost model (model/cost_model.h, ImplementationProfile): what this library and the
// published NVRAR prototype pay per call outside the algorithm's steps, and how they move bytes.
//
// The prototype's profile is read from its code: the authors' repository axonn-ai/yalis at commit daeecc6 (the
// commit of the published tune_results.json), files yalis/custom_comm/csrc/src/nvshmem_comm/ll8_coll.cu (the LL8
// path the tuner runs), include/nvshmem_comm/ll8_coll.cuh and yalis/custom_comm/tuning/
// benchmark_tune_allreduce_preallocated.py (what was timed). docs/model.md lists each fact with its place; what the
// code does not pin down is one fitted per-call term, other_us.
#include <fmt/format.h>

#include <algorithm>

#include "model/cost_model.h"
#include "nvrar/types.h"

namespace nvrar::model {

namespace {

// The prototype's per-call cost the code does not pin down (NVSHMEM's collectives' own synchronisation, the eager
// Python loop's host-side issue, the wait for the partners' readiness signal): `nvrar-model --preset
// a100-slingshot11 --calibrate tests/data/published_yalis_perlmutter_nvrar.json --profile prototype` fits it from
// the published times once the launch-shape sweep has fixed the network latency (model/calibrate.h).
constexpr double kPrototypeFittedOtherUs = 23.62;

}  // namespace

// "ours" must stay first: nvrar_breakdown(preset, nodes, bytes) and predict_us(kNvrar, ...) use it.
const std::vector<ImplementationProfile>& profiles() {
  static const std::vector<ImplementationProfile> kProfiles = {
      ImplementationProfile{
          .name = "ours",
          .description = "this library: one fused kernel per call, cell protocol (data + flag) for every phase",
          .kernel_launches = 1,
          .sources = {"src/gpu/algorithms: the hierarchical entry launches one kernel per all-reduce; cells of "
                      "core/protocol.h (flag factor from the preset)"}},
      ImplementationProfile{
          .name = "prototype",
          .description = "the published NVRAR prototype (axonn-ai/yalis custom_comm at daeecc6, LL8 path): four "
                         "kernels of its own + NVSHMEM's reduce-scatter and fcollect inside a node, 8-byte cells "
                         "(4 B data + 4 B flag) put between nodes, separate pack and unpack; timed with a refill "
                         "of the input before each call",
          .kernel_launches = 6,
          .harness_launches = 1,
          .harness_write_factor = 1.0,
          .host_us = 0,
          .library_intra_collectives = true,
          .copy_factor = 6.0,
          .intra_flag_factor = 1.0,
          .net_flag_factor = 2.0,
          .other_us = kPrototypeFittedOtherUs,
          .sources =
              {"ll8_coll.cu@daeecc6 RecursiveLL8Coll::allreduce_preallocated_impl: per call NVSHMEM's sum "
               "reduce-scatter on the node team, bump_seq<<<1,1>>>, pack_payloads_kernel, the recursive-doubling "
               "kernel (nvshmemx_collective_launch), unpack_payloads_kernel, NVSHMEM's fcollect on the node team: "
               "4 kernels of its own + 2 library collectives (counted as one launch each: assumed)",
               "ll8_coll.cuh@daeecc6 Payload8B: an 8-byte cell holds 4 bytes of data (2 bf16) and a 4-byte "
               "sequence-number flag; the recursive kernel puts whole cells (nvshmemx_put64_nbi_block) and the "
               "receiver polls the flags: 2 wire bytes per payload byte between nodes, no put-with-signal",
               "pack reads the slice (M/G) and writes cells (2 M/G), unpack reads cells and writes the slice: 6 bytes "
               "of GPU-memory traffic per slice byte",
               "benchmark_tune_allreduce_preallocated.py@daeecc6: each timed iteration is tensor.fill_() then "
               "allreduce_preallocated(), eager (no CUDA graph), CUDA events around the loop, the maximum over "
               "ranks: one more kernel writing the whole message per call",
               "assumed: NVSHMEM's reduce-scatter and fcollect move payload only over NVLink (flag factor 1)",
               "fitted: other_us, everything per call the code does not pin down (NVSHMEM collectives' "
               "synchronisation, host-side issue of the eager loop, the wait in bump_seq for the partners' "
               "readiness signals), assumed the same at every size; docs/model.md"}}};
  return kProfiles;
}

std::string profile_names() {
  std::string names;
  for (const ImplementationProfile& p : profiles()) names += names.empty() ? p.name : ", " + p.name;
  return names;
}

bool has_profile(const std::string& name) {
  const std::vector<ImplementationProfile>& all = profiles();
  return std::any_of(all.begin(), all.end(), [&](const ImplementationProfile& p) { return p.name == name; });
}

const ImplementationProfile& find_profile(const std::string& name) {
  for (const ImplementationProfile& p : profiles())
    if (p.name == name) return p;
  throw Error(fmt::format("nvrar-model: no implementation profile '{}' (profiles: {})", name, profile_names()));
}

void validate_profile(const ImplementationProfile& p) {
  auto fail = [&](const char* field, double value, const char* rule) {
    throw Error(fmt::format("nvrar-model: profile '{}': {} = {} ({})", p.name, field, value, rule));
  };
  if (p.kernel_launches < 1) fail("kernel_launches", p.kernel_launches, "must be at least 1");
  if (p.harness_launches < 0) fail("harness_launches", p.harness_launches, "must be >= 0");
  if (!(p.harness_write_factor >= 0)) fail("harness_write_factor", p.harness_write_factor, "must be >= 0");
  if (!(p.host_us >= 0)) fail("host_us", p.host_us, "must be >= 0");
  if (!(p.copy_factor >= 0)) fail("copy_factor", p.copy_factor, "must be >= 0");
  if (!(p.other_us >= 0)) fail("other_us", p.other_us, "must be >= 0");
  if (!(p.intra_flag_factor == 0 || p.intra_flag_factor >= 1))
    fail("intra_flag_factor", p.intra_flag_factor, "0 (the preset's) or wire bytes per payload byte >= 1");
  if (!(p.net_flag_factor == 0 || p.net_flag_factor >= 1))
    fail("net_flag_factor", p.net_flag_factor, "0 (the preset's) or wire bytes per payload byte >= 1");
}

}  // namespace nvrar::model
