#include "model/print.h"

#include <algorithm>
#include <cmath>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace nvrar::model_tool {

std::string human_size(double bytes) {
  const char* units[] = {"B", "K", "M", "G"};
  int u = 0;
  while (u < 3 && bytes >= 1024 && std::fmod(bytes, 1024) == 0) {
    bytes /= 1024;
    ++u;
  }
  return fmt::format("{:g}{}", bytes, units[u]);
}

std::string format_us(double us) {
  if (us >= 10000) return fmt::format("{:.0f}", us);
  if (us >= 100) return fmt::format("{:.1f}", us);
  return fmt::format("{:.2f}", us);
}

const char* arch_name(model::GpuArch a) { return a == model::GpuArch::kAmpere ? "Ampere" : "Hopper"; }
const char* cpu_name(model::CpuVendor c) {
  return c == model::CpuVendor::kIntel ? "Intel" : c == model::CpuVendor::kAmd ? "AMD" : "Arm";
}

void print_preset(std::FILE* out, const model::Preset& p, bool with_sources) {
  fmt::print(out, "# preset {}: {}\n", p.name, p.description);
  fmt::print(out,
             "#   {} GPUs and {} NICs per node; NVLink alpha {:.2f} us, {:.1f} GB/s per GPU (one peer: {:.1f}), "
             "{:.2f} us per extra message\n",
             p.gpus_per_node, p.nics_per_node, p.intra.alpha_us, p.intra.bandwidth_gbs,
             1e-3 / p.intra.peer_beta_us_per_byte(), p.intra.message_us);
  fmt::print(out,
             "#   network alpha {:.2f} us, {:.1f} GB/s per NIC ({:.1f} per GPU with all sending), {:.2f} us per "
             "extra message\n",
             p.inter.alpha_us, p.inter.bandwidth_gbs, p.net_bandwidth_per_gpu_gbs(), p.inter.message_us);
  fmt::print(out,
             "#   kernel launch {:.2f} us, flag poll {:.2f} us per step, flag factor {:g} (wire bytes per payload "
             "byte)\n",
             p.launch_us, p.poll_us, p.flag_factor);
  fmt::print(out,
             "#   NCCL: {} constants, {} CPU, {} channels, one-node bus bandwidth {:.1f} GB/s, net plugin latency "
             "{:.2f} us, LL128 {}\n",
             arch_name(p.nccl.arch), cpu_name(p.nccl.cpu), p.nccl.channels, p.nccl.intra_bus_bw_gbs,
             p.nccl.inter_latency_us, p.nccl.ll128 ? "on" : "off");
  if (with_sources)
    for (const std::string& s : p.sources) fmt::print(out, "#   source: {}\n", s);
}

void print_network_calibration(std::FILE* out, const model::NetworkCalibration& c) {
  if (c.sweep_used)
    fmt::print(out,
               "# launch-shape sweep: one more serial chunk round per network step costs {:.2f} us (poll + alpha; {} "
               "rows in {} groups of one size and block count, rms error {:.1f}%)\n",
               c.round_latency_us, c.sweep_points, c.sweep_groups, 100 * c.sweep_rms_relative);
  if (c.fitted)
    fmt::print(out,
               "# calibrated network from published points ({} profile): alpha {:.2f} us, {:.2f} GB/s per NIC{}; "
               "{} points, rms error {:.1f}%, max {:.1f}% (at {})\n",
               c.profile, c.alpha_us, c.bandwidth_gbs,
               c.other_fitted ? fmt::format("; {} other_us {:.2f} us per call", c.profile, c.other_us) : "",
               c.fit.points, 100 * c.fit.rms_relative, 100 * c.fit.max_relative, human_size(c.fit.worst_bytes));
  for (const std::string& n : c.notes) fmt::print(out, "# calibration note: {}\n", n);
}

void print_nccl_calibration(std::FILE* out, const model::NcclCalibration& c) {
  if (c.fitted) {
    fmt::print(out,
               "# calibrated NCCL net latency from published speedup ranges: {:.2f} us per network hop (the smallest "
               "at which each published file's best NCCL / published ratio reaches its range's lower bound: 'up to' "
               "is the best size; needed at {} on {} nodes); every ratio at or below its upper bound up to {:.2f} us: "
               "{}\n",
               c.inter_latency_us, human_size(c.binding_bytes), c.binding_nodes, std::max(0.0, c.upper_latency_us),
               c.consistent ? "consistent" : "NOT consistent");
    for (const model::SpeedupRow& r : c.rows)
      fmt::print(out, "#   {} nodes, {}: NCCL {} us ({}) / published {} us = {:.2f}x (range {:g}x-{:g}x){}\n", r.nodes,
                 human_size(r.bytes), format_us(r.nccl_us), r.nccl_pick, format_us(r.published_us), r.ratio(),
                 r.ratio_min, r.ratio_max, r.best ? ", best" : "");
  }
  for (const std::string& n : c.notes) fmt::print(out, "# calibration note: {}\n", n);
}

void print_profile(std::FILE* out, const model::ImplementationProfile& p) {
  auto factor = [](double f) { return f > 0 ? fmt::format("{:g}", f) : std::string("preset"); };
  fmt::print(out,
             "# profile {}: {} kernel launches + {} in the timed loop, host {:.2f} us, other {:.2f} us per call, {} "
             "intra-node phases, copies {:g} x the slice, flag factor NVLink {} / network {}\n",
             p.name, p.kernel_launches, p.harness_launches, p.host_us, p.other_us,
             p.library_intra_collectives ? "library" : "fused-cell", p.copy_factor, factor(p.intra_flag_factor),
             factor(p.net_flag_factor));
}

void print_calibration(std::FILE* out, const model::Calibration& c) {
  auto quality = [](const model::FitQuality& q) {
    return fmt::format("{} points, rms error {:.1f}%, max {:.1f}% (G={} at {})", q.points, 100 * q.rms_relative,
                       100 * q.max_relative, q.worst_gpus, human_size(q.worst_bytes));
  };
  if (c.intra_fitted)
    fmt::print(out,
               "# calibrated NVLink link from '{}' rows: alpha {:.2f} us, {:.2f} us per extra message, {:.1f} GB/s; "
               "{}\n",
               c.intra_algorithm, c.intra_alpha_us, c.intra_message_us, c.intra_bandwidth_gbs, quality(c.intra_fit));
  if (c.nccl_fitted)
    fmt::print(out, "# calibrated NCCL one-node bus bandwidth from 'nccl' rows: {:.1f} GB/s; {}\n",
               c.nccl_intra_bus_bw_gbs, quality(c.nccl_fit));
  for (const std::string& n : c.notes) fmt::print(out, "# calibration note: {}\n", n);
}

nlohmann::ordered_json preset_json(const model::Preset& p) {
  auto link = [](const model::LinkParams& l) {
    return nlohmann::ordered_json{{"alpha_us", l.alpha_us},
                                  {"bandwidth_gbs", l.bandwidth_gbs},
                                  {"peer_bandwidth_gbs", l.peer_bandwidth_gbs},
                                  {"message_us", l.message_us}};
  };
  return {{"name", p.name},
          {"description", p.description},
          {"gpus_per_node", p.gpus_per_node},
          {"nics_per_node", p.nics_per_node},
          {"intra", link(p.intra)},
          {"inter", link(p.inter)},
          {"launch_us", p.launch_us},
          {"poll_us", p.poll_us},
          {"flag_factor", p.flag_factor},
          {"memory_bandwidth_gbs", p.memory_bandwidth_gbs},
          {"nccl",
           {{"arch", arch_name(p.nccl.arch)},
            {"cpu", cpu_name(p.nccl.cpu)},
            {"channels", p.nccl.channels},
            {"intra_bus_bw_gbs", p.nccl.intra_bus_bw_gbs},
            {"inter_latency_us", p.nccl.inter_latency_us},
            {"ll128", p.nccl.ll128}}},
          {"sources", p.sources}};
}

}  // namespace nvrar::model_tool
