// Fuzz target: an HF config.json (engine/model_config.h, parse_config_json) as text.
//
// A config the parser accepts is one the engine may run, so what nvrar-llm does next with it must not fail
// either: validate() again (it must agree with the parse), count the parameters (int64 products of the sizes:
// UBSan reports an overflow the validation let through), and truncate to one layer.
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/model_config.h"
#include "fuzz_check.h"

namespace {
constexpr const char* kOrigin = "fuzz/config.json";
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  nvrar::engine::ModelConfig config;
  try {
    config = nvrar::engine::parse_config_json(nvrar::fuzz::as_text(data, size), kOrigin);
  } catch (const nvrar::Error& e) {
    nvrar::fuzz::expect_names_origin(e, kOrigin);
    return 0;
  }
  try {
    nvrar::engine::validate(config);
    const nvrar::engine::ParameterCount count = nvrar::engine::count_parameters(config);
    FUZZ_EXPECT(count.total > 0, "accepted a config with " + std::to_string(count.total) + " parameters");
    nvrar::engine::truncate(config, 1);
  } catch (const nvrar::Error& e) {
    FUZZ_EXPECT(false, std::string("an accepted config fails later: ") + e.what());
  }
  return 0;
}
