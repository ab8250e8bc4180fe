// nvrar-model's printing: sizes and times as people read them, and the presets, profiles and calibrations as text
// and JSON (tools/nvrar_model.cpp prints with these).
#pragma once

#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "model/calibrate.h"
#include "model/cost_model.h"
#include "model/published_speedup.h"

namespace nvrar::model_tool {

namespace model = nvrar::model;

std::string human_size(double bytes);
std::string format_us(double us);
const char* arch_name(model::GpuArch a);
const char* cpu_name(model::CpuVendor c);
void print_preset(std::FILE* out, const model::Preset& p, bool with_sources);
void print_network_calibration(std::FILE* out, const model::NetworkCalibration& c);
void print_nccl_calibration(std::FILE* out, const model::NcclCalibration& c);
void print_profile(std::FILE* out, const model::ImplementationProfile& p);
void print_calibration(std::FILE* out, const model::Calibration& c);
nlohmann::ordered_json preset_json(const model::Preset& p);

}  // namespace nvrar::model_tool
