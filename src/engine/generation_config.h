// What a model directory says about generating text: the end-of-sequence token ids and the default sampling
// parameters, as transformers' generate reads them.
//  - EOS: generation_config.json's eos_token_id (an integer or a list of integers), else config.json's; none at all
//    is allowed (generation then stops only at the token limit).
//  - Sampling defaults from generation_config.json: do_sample false or absent -> greedy (temperature 0); otherwise
//    its temperature (absent: 1), top_k (absent: 0, no cut; note transformers' own default is 50) and top_p
//    (absent: 1). The command line overrides each.
// Every malformed field is an Error naming the file and the field.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "engine/sampling_reference.h"

namespace nvrar::engine {

struct GenerationConfig {
  std::vector<int32_t> eos_token_ids;
  SamplingParams sampling;  // seed 0
};

// Reads dir/generation_config.json and dir/config.json (a missing file counts as empty); eos ids must lie in
// [0, vocab_size).
GenerationConfig load_generation_config(const std::filesystem::path& dir, int64_t vocab_size);

}  // namespace nvrar::engine
