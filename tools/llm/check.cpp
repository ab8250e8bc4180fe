// nvrar-llm check: loads an HF checkpoint, runs the prompts of a reference file written by scripts/hf_reference.py,
// and compares logits (prefill's last position and every decode step, teacher-forced with the reference's tokens) and
// greedy tokens with the reference (common.h).
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/json_input.h"
#include "engine/gpu/runner.h"
#include "llm/common.h"

namespace nvrar::llm {

namespace {

// A reference file of scripts/hf_reference.py: prompts [batch][len], greedy tokens [step][batch] and logits
// [step][batch][vocab] of transformers in bf16, and (newer files) logits_fp32: an fp32 forward of the same weights,
// teacher-forced on the same tokens, the truth both bf16 runs are measured against.
using Logits = std::vector<std::vector<std::vector<float>>>;  // [step][batch][vocab]
struct Reference {
  std::vector<int32_t> prompts;  // [batch][len], row-major
  int64_t batch = 0, len = 0, steps = 0;
  std::vector<std::vector<int32_t>> tokens;
  Logits logits;
  Logits logits_fp32;  // empty in files without it
};

// Reads and checks a reference against the model's vocabulary; Error naming the file and the cause. The JSON goes
// through json_input: a depth limit while parsing, and every token and logit through a checked conversion (a token
// an int32, a logit finite and within a float), the field named, e.g. "logits[0][1][7]".
Reference load_reference(const std::string& path, int64_t vocab) {
  namespace ji = nvrar::json_input;
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("nvrar-llm check: " + path + ": cannot open the reference");
  std::ostringstream text;
  text << f.rdbuf();
  if (f.bad()) throw Error("nvrar-llm check: " + path + ": error reading the reference");
  const std::string where = "nvrar-llm check: " + path;
  const ji::Json ref = ji::parse(text.str(), where);
  const auto not_reference = [&](const std::string& why) {
    throw Error(fmt::format("{}: not a reference file of scripts/hf_reference.py ({})", where, why));
  };
  if (!ref.is_object()) not_reference("the top level is " + ji::describe(ref));
  const auto array = [&](const ji::Json& v, const std::string& field) -> const ji::Json& {
    if (!v.is_array()) ji::fail_field(where, field, "wrong type: expected an array, got " + ji::describe(v));
    return v;
  };
  const auto member = [&](const char* key) -> const ji::Json& {
    const auto it = ref.find(key);
    if (it == ref.end()) not_reference(fmt::format("no field '{}'", key));
    return array(*it, key);
  };
  const auto token_rows = [&](const char* key) {
    const ji::Json& rows = member(key);
    std::vector<std::vector<int32_t>> out(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const ji::Json& row = array(rows[i], fmt::format("{}[{}]", key, i));
      for (std::size_t j = 0; j < row.size(); ++j)
        out[i].push_back(ji::to_integer<int32_t>(row[j], where, fmt::format("{}[{}][{}]", key, i, j)));
    }
    return out;
  };
  Reference r;
  const std::vector<std::vector<int32_t>> prompts2d = token_rows("prompts");
  r.tokens = token_rows("tokens");
  const auto read_logits = [&](const char* key, Logits& dst) {
    const ji::Json& logits = member(key);
    dst.resize(logits.size());
    for (std::size_t s = 0; s < logits.size(); ++s) {
      const ji::Json& step = array(logits[s], fmt::format("{}[{}]", key, s));
      for (std::size_t b = 0; b < step.size(); ++b) {
        const ji::Json& row = array(step[b], fmt::format("{}[{}][{}]", key, s, b));
        std::vector<float>& out = dst[s].emplace_back(row.size());
        for (std::size_t i = 0; i < row.size(); ++i) {
          // The common case without formatting a field name; anything else gets the checked conversion's error.
          const ji::Json& x = row[i];
          if (x.is_number() && std::abs(x.get<double>()) <= double(FLT_MAX))
            out[i] = static_cast<float>(x.get<double>());
          else
            out[i] = ji::to_float(x, where, fmt::format("{}[{}][{}][{}]", key, s, b, i));
        }
      }
    }
  };
  read_logits("logits", r.logits);
  if (ref.contains("logits_fp32")) read_logits("logits_fp32", r.logits_fp32);
  auto bad = [&](const std::string& why) { throw Error(fmt::format("nvrar-llm check: {}: {}", path, why)); };
  r.batch = static_cast<int64_t>(prompts2d.size());
  r.steps = static_cast<int64_t>(r.tokens.size());
  if (r.batch == 0 || prompts2d[0].empty()) bad("no prompts");
  if (r.steps == 0) bad("no steps");
  r.len = static_cast<int64_t>(prompts2d[0].size());
  for (const auto& p : prompts2d) {
    if (static_cast<int64_t>(p.size()) != r.len) bad("prompts of different lengths");
    r.prompts.insert(r.prompts.end(), p.begin(), p.end());
  }
  auto in_vocab = [&](int32_t t) { return t >= 0 && t < vocab; };
  if (!std::all_of(r.prompts.begin(), r.prompts.end(), in_vocab))
    bad(fmt::format("a prompt token outside the model's vocabulary [0, {})", vocab));
  for (const auto* l : {&r.logits, &r.logits_fp32}) {
    const char* key = l == &r.logits ? "logits" : "logits_fp32";
    if (l->empty() && l == &r.logits_fp32) continue;
    if (static_cast<int64_t>(l->size()) != r.steps) bad(fmt::format("'{}' and 'tokens' have different step counts", key));
    for (int64_t s = 0; s < r.steps; ++s) {
      if (static_cast<int64_t>(r.tokens[s].size()) != r.batch || static_cast<int64_t>((*l)[s].size()) != r.batch)
        bad(fmt::format("step {}: not one entry per prompt ({}) in 'tokens' or '{}'", s, r.batch, key));
      for (const auto& row : (*l)[s])
        if (static_cast<int64_t>(row.size()) != vocab)
          bad(fmt::format("step {}: {} {}, the model's vocabulary has {}", s, row.size(), key, vocab));
    }
  }
  for (int64_t s = 0; s < r.steps; ++s)
    if (!std::all_of(r.tokens[s].begin(), r.tokens[s].end(), in_vocab))
      bad(fmt::format("step {}: a token outside the model's vocabulary [0, {})", s, vocab));
  return r;
}

}  // namespace

int run_check(const CheckOptions& o) {
  // Inputs first (CPU only), then the GPU.
  const eg::AllReduceBackend backend = eg::parse_allreduce_backend(o.allreduce);
  const nvrar::engine::ModelConfig config = nvrar::engine::load_config(o.model_dir + "/config.json");
  const Reference reference = load_reference(o.reference, config.vocab_size);
  const std::vector<int32_t>& prompts = reference.prompts;
  const auto& ref_tokens = reference.tokens;  // [step][batch]
  const auto& ref_logits = reference.logits;  // [step][batch][V]
  const int64_t batch = reference.batch, len = reference.len, steps = reference.steps;
  eg::EngineOptions eo;
  eo.max_batch = batch;
  eo.prefill_chunk = std::min(o.prefill_chunk > 0 ? o.prefill_chunk : eg::default_prefill_chunk(o.tp), batch * len);
  eo.max_seq = len + steps + 1;
  eo.allreduce = backend;
  eg::check_engine(config, o.tp, eo);
  std::optional<nvrar::engine::Checkpoint> checkpoint = open_checkpoint(o.model_dir, config);

  auto comm = make_comm(o.tp, backend);
  const bool root = comm->rank() == 0;
  eg::LlamaRunner model(config, *comm, eo);
  model.load_checkpoint(*checkpoint);
  // Teacher forcing: every decode step consumes the reference's token, so each step compares logits of the same
  // context even where a near tie made our greedy choice differ from transformers'. The truth is the reference's
  // fp32 forward when the file has one (transformers' bf16 logits drift from it with context length, so they are
  // measured against it too), else its bf16 logits. Per step and sequence:
  //  - every logit within the tolerance of the truth. With fp32 truth the tolerance comes from bf16 rounding, not
  //    from a setting: twice transformers' own bf16 error at that step plus one bf16 rounding (2^-8) of the largest
  //    logit; without it, atol + rtol x the largest |reference logit| of the step;
  //  - our sampled token (the device argmax over the vocabulary shards, merged across ranks) is the argmax of our
  //    own gathered logits (exact; equal values count as ties);
  //  - it equals the reference's token, or the truth ranks both within 2 x tolerance (a near tie the allowed logit
  //    error can flip), which is counted and printed.
  const bool fp32 = !reference.logits_fp32.empty();
  const Logits& truth = fp32 ? reference.logits_fp32 : ref_logits;
  const char* truth_name = fp32 ? "fp32" : "HF";
  int bad = 0, near_ties = 0, steps_over_hf = 0;
  double worst_ratio = 0;
  std::vector<double> ratios;  // per step, against fp32: ours / transformers' bf16 error
  std::vector<std::vector<int32_t>> ours;
  nlohmann::json our_logits = nlohmann::json::array();
  std::vector<int32_t> got = model.prefill(prompts, batch, len);
  for (int64_t s = 0; s < steps; ++s) {
    if (s > 0) {
      model.set_tokens(ref_tokens.at(s - 1));
      model.decode_step(!o.no_graph);
      got = model.tokens();
    }
    ours.push_back(got);
    const std::vector<float> logits = model.logits();
    const int64_t V = config.vocab_size;
    if (!o.logits_out.empty()) {
      our_logits.push_back(nlohmann::json::array());
      for (int64_t b = 0; b < batch; ++b)
        our_logits.back().push_back(std::vector<float>(logits.begin() + b * V, logits.begin() + (b + 1) * V));
    }
    double max_diff = 0, max_truth = 0, hf_err = 0;
    int64_t worst = -1;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t v = 0; v < V; ++v) {
        const double r = truth.at(s).at(b).at(v);
        const double d = std::fabs(logits[b * V + v] - r);
        max_truth = std::max(max_truth, std::fabs(r));
        if (fp32) hf_err = std::max(hf_err, std::fabs(double(ref_logits.at(s).at(b).at(v)) - r));
        if (d > max_diff) {
          max_diff = d;
          worst = b * V + v;
        }
      }
    const double tol = fp32 ? 2 * hf_err + max_truth / 256 : o.atol + o.rtol * max_truth;
    bool ok = max_diff <= tol;
    std::string notes;
    for (int64_t b = 0; b < batch; ++b) {
      const float* row = logits.data() + b * V;
      const float our_max = *std::max_element(row, row + V);
      if (got[b] < 0 || got[b] >= V || row[got[b]] != our_max) {
        ok = false;
        notes += fmt::format(" [seq {}: sampled {} is not the argmax of our logits]", b, got[b]);
        continue;
      }
      const int32_t want = ref_tokens.at(s).at(b);
      if (got[b] == want) continue;
      const double gap = truth.at(s).at(b).at(want) - truth.at(s).at(b).at(got[b]);
      if (gap <= 2 * tol) {
        ++near_ties;
        notes += fmt::format(" [seq {}: {} vs HF {}, near tie: {} gap {:.4f}]", b, got[b], want, truth_name, gap);
      } else {
        ok = false;
        notes += fmt::format(" [seq {}: {} vs HF {}, {} gap {:.4f} > 2 x tolerance]", b, got[b], want, truth_name,
                             gap);
      }
    }
    if (!ok) ++bad;
    std::string vs_hf;
    if (fp32) {
      const double ratio = hf_err > 0 ? max_diff / hf_err : (max_diff > 0 ? INFINITY : 0.0);
      worst_ratio = std::max(worst_ratio, ratio);
      ratios.push_back(ratio);
      if (ratio > 1) ++steps_over_hf;
      vs_hf = fmt::format(", transformers bf16 {:.4f}, ratio {:.2f}", hf_err, ratio);
    }
    const std::string where =
        worst < 0 ? std::string("all equal") : fmt::format("worst at seq {} token {}", worst / V, worst % V);
    if (root && (!ok || !notes.empty() || s == 0 || s + 1 == steps))
      fmt::print("step {:>3}: max |logit - {}| = {:.4f}{} (tolerance {:.4f}, {}) {}{}\n", s, truth_name, max_diff,
                 vs_hf, tol, where, ok ? "ok" : "MISMATCH", notes);
  }
  if (root && !o.tokens_out.empty()) {
    std::ofstream out(o.tokens_out);
    out << nlohmann::json(ours).dump() << "\n";
    if (!out) throw Error("nvrar-llm check: cannot write --tokens-out " + o.tokens_out);
  }
  if (root && !o.logits_out.empty()) {
    std::ofstream out(o.logits_out);
    out << our_logits.dump() << "\n";
    if (!out) throw Error("nvrar-llm check: cannot write --logits-out " + o.logits_out);
  }
  if (root) fmt::print("GEMM kernels (m x n x k, rank 0): {}\n", model.gemm_choices());
  if (root)
    fmt::print("Residual stream: {} (NVRAR_LLM_RESIDUAL, NVRAR_LLM_ACTIVATIONS){}\n", model.residual_type(),
               model.residual_in_gemm() ? fmt::format(", added inside {}", model.residual_gemms()) : "");
  if (root) fmt::print("GEMM outputs: {} (NVRAR_LLM_ACTIVATIONS)\n", model.activations_type());
  if (root && fp32) {
    std::sort(ratios.begin(), ratios.end());
    const std::size_t h = ratios.size() / 2;
    const double median = ratios.empty() ? 0.0 : ratios.size() % 2 ? ratios[h] : (ratios[h - 1] + ratios[h]) / 2;
    fmt::print("against fp32: our largest error / transformers' bf16 error = {:.2f} (worst step), {:.2f} (median "
               "step); steps where ours is larger: {} of {}\n",
               worst_ratio, median, steps_over_hf, steps);
  }
  if (root)
    fmt::print("nvrar-llm check: TP {}, all-reduce {}, {} prompts x {} tokens, {} steps (teacher-forced, truth {}): "
               "{}; greedy tokens equal HF's except {} near tie(s)\n",
               o.tp, o.allreduce, batch, len, steps, fp32 ? "fp32 forward" : "transformers bf16",
               bad == 0 ? "PASSED" : "FAILED", near_ties);
  return bad == 0 ? 0 : 1;
}

}  // namespace nvrar::llm
