// The settings table (settings.h). Each NVRAR_* variable is one Row of rows() (settings_rows.h): its name, type,
// default (as the text a user would write, parsed by the same code as the environment, so a default can never fall
// outside its own range), accepted form, one-line help, scope and the Settings member it fills. This file declares
// the table and reads the environment against it; settings_docs.cpp renders it.
#include "config/settings.h"

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "config/gemm_pin.h"
#include "config/settings_rows.h"
#include "nvrar/types.h"

namespace nvrar::config {

using detail::defaults;
using detail::format_size;
using detail::kCollectives;
using detail::kEngine;
using detail::kGiB;
using detail::kKiB;
using detail::kMiB;
using detail::Row;
using detail::rows;
using detail::Type;

namespace {

Row integer(const char* name, int64_t Settings::*member, const char* default_text, int64_t min, int64_t max,
            const char* unit, const char* help) {
  return Row{.name = name, .type = Type::kInteger, .default_text = default_text, .min = min, .max = max,
             .unit = unit, .help = help, .number = member};
}

// An integer row that also requires a multiple of `multiple` and, with zero_too, takes 0 outside [min, max].
Row stepped(Row r, int64_t multiple, bool zero_too) {
  r.multiple = multiple;
  r.zero_too = zero_too;
  return r;
}

Row size(const char* name, int64_t Settings::*member, const char* default_text, int64_t min, int64_t max,
         const char* help) {
  return Row{.name = name, .type = Type::kSize, .default_text = default_text, .min = min, .max = max, .help = help,
             .number = member};
}

Row flag(const char* name, int64_t Settings::*member, const char* default_text, const char* help) {
  return Row{.name = name, .type = Type::kFlag, .default_text = default_text, .help = help, .number = member};
}

Row choice(const char* name, std::string Settings::*member, const char* default_text,
           std::vector<std::string> choices, const char* help) {
  return Row{.name = name, .type = Type::kChoice, .default_text = default_text, .choices = std::move(choices),
             .help = help, .text = member};
}

Row text(const char* name, Type type, std::string Settings::*member, const char* default_text, const char* help) {
  return Row{.name = name, .type = type, .default_text = default_text, .help = help, .text = member};
}

Row in_scope(Row r, const char* scope) {
  r.scope = scope;
  return r;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

std::string accepted_text(const Row& r) {
  switch (r.type) {
    case Type::kInteger: {
      std::string form = r.multiple > 1 ? fmt::format("a multiple of {}", r.multiple) : "an integer";
      form = fmt::format("{}{} from {} to {}", r.zero_too ? "0, or " : "", form, r.min, r.max);
      return *r.unit != '\0' ? form + " " + r.unit : form;
    }
    case Type::kSize:
      return fmt::format("a byte count from {} to {}: digits, optionally followed by K, M or G (KiB, MiB, GiB)",
                         format_size(r.min), format_size(r.max));
    case Type::kFlag:
      return "0 or 1";
    case Type::kChoice:
      return "one of " + join(r.choices) + r.choice_note;
    case Type::kString:
      return "any text";
    case Type::kPath:
      return "a file system path";
  }
  return "";
}

// NVRAR_ALGO takes what parse_algorithm takes, older spellings included.
std::string algorithm_problem(std::string_view name) {
  try {
    parse_algorithm(std::string(name));
    return "";
  } catch (const Error&) {
    return "is not one of the accepted values";
  }
}

// Every algorithm_name(), in enum order.
std::vector<std::string> algorithm_names() {
  std::vector<std::string> names;
  for (int a = 0; a < kAlgorithmCount; ++a)
    names.push_back(algorithm_name(static_cast<Algorithm>(a)));
  return names;
}

[[noreturn]] void refuse(const Row& r, const std::string& value, const std::string& problem) {
  throw Error(fmt::format("nvrar: environment variable {}='{}' {} ({})", r.name, value, problem, r.accepted));
}

enum class Parsed { kOk, kMalformed, kOverflow };

// The whole of `text` as a decimal int64: an optional '-', then digits, nothing else (no '+', spaces or hex).
Parsed parse_decimal(std::string_view text, int64_t& n) {
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, n, 10);
  if (ptr != end || (ec != std::errc() && ec != std::errc::result_out_of_range)) return Parsed::kMalformed;
  return ec == std::errc::result_out_of_range ? Parsed::kOverflow : Parsed::kOk;
}

// A number past int64 is reported as out of range, which it is for every row.
int64_t parse_integer(const Row& r, const std::string& value) {
  int64_t n = 0;
  const Parsed p = parse_decimal(value, n);
  if (p == Parsed::kMalformed) refuse(r, value, "is not an integer");
  if (p == Parsed::kOverflow) refuse(r, value, "is out of range");
  return n;
}

// Digits with an optional K, M or G suffix (KiB, MiB, GiB), as bytes.
int64_t parse_size(const Row& r, const std::string& value) {
  std::string_view digits = value;
  int64_t scale = 1;
  if (!digits.empty()) {
    const char suffix = digits.back();
    scale = suffix == 'K' ? kKiB : suffix == 'M' ? kMiB : suffix == 'G' ? kGiB : 1;
    if (scale != 1) digits.remove_suffix(1);
  }
  int64_t n = 0;
  const Parsed p = digits.empty() ? Parsed::kMalformed : parse_decimal(digits, n);
  if (p == Parsed::kMalformed) refuse(r, value, "is not a byte count");
  int64_t bytes = 0;
  if (p == Parsed::kOverflow || __builtin_mul_overflow(n, scale, &bytes)) refuse(r, value, "is out of range");
  return bytes;
}

void check_range(const Row& r, const std::string& value, int64_t n) {
  if (r.zero_too && n == 0) return;
  if (n < r.min || n > r.max) refuse(r, value, "is out of range");
  if (n % r.multiple != 0) refuse(r, value, fmt::format("is not a multiple of {}", r.multiple));
}

// Parses `value` (never empty: empty means unset) into the row's member of `s`, or throws.
void apply(const Row& r, const std::string& value, Settings& s) {
  switch (r.type) {
    case Type::kInteger: {
      const int64_t n = parse_integer(r, value);
      check_range(r, value, n);
      s.*r.number = n;
      return;
    }
    case Type::kSize: {
      const int64_t n = parse_size(r, value);
      check_range(r, value, n);
      s.*r.number = n;
      return;
    }
    case Type::kFlag:
      if (value != "0" && value != "1") refuse(r, value, "is not a flag");
      s.*r.number = value == "1" ? 1 : 0;
      return;
    case Type::kChoice: {
      if (r.problem != nullptr) {
        const std::string why = r.problem(value);
        if (!why.empty()) refuse(r, value, why);
      } else {
        bool ok = false;
        for (const std::string& c : r.choices) ok = ok || c == value;
        if (!ok) refuse(r, value, "is not one of the accepted values");
      }
      s.*r.text = value;
      return;
    }
    case Type::kString:
    case Type::kPath:
      s.*r.text = value;
      return;
  }
}

}  // namespace

namespace detail {

// THE declaration of every variable. Help lines are one sentence; the reasoning behind a default (measurements)
// stays with the code that uses it and in docs/perf-notes.md.
const std::vector<Row>& rows() {
  static const std::vector<Row> table = [] {
    std::vector<Row> t;
    t.push_back(integer("NVRAR_GPUS_PER_NODE", &Settings::gpus_per_node, "0", 0, 4096, "ranks",
                        "Ranks per (virtual) node; 0 takes the launcher's local size (all ranks in the CPU "
                        "executor)."));
    t.push_back(integer("NVRAR_TIMEOUT_MS", &Settings::timeout_ms, "30000", 1, 86400000, "milliseconds",
                        "How long any wait for a peer may spin before the call fails with a message naming the peer; "
                        "also how long the Hopper prefill attention kernels wait for a copy into shared memory (or "
                        "for a stage's release) before they stop with a message naming the kernel and the wait."));
    t.push_back(integer("NVRAR_HOST_CHUNK_UNITS", &Settings::host_chunk_units, "64", 1, 1 << 20, "units of 16 bytes",
                        "CPU executor: 16-byte units per chunk (the GPU kernels pick theirs from the launch shape)."));
    t.push_back(integer("NVRAR_MAX_BLOCKS", &Settings::max_blocks, "0", 0, 1024, "thread blocks",
                        "GPU: most thread blocks a hierarchical call may use; 0 takes the SM count (at most 128)."));
    // 32..512: one warp to the largest block the hierarchical kernel launches (gpu/algorithms/hierarchical.h,
    // kMinChunkUnits and kMaxThreadsPerBlock); hierarchical_chunk_units() would round anything else into that.
    t.push_back(stepped(integer("NVRAR_CHUNK_UNITS", &Settings::chunk_units, "0", 32, 512, "units of 16 bytes",
                                "GPU: 16-byte units per hierarchical chunk (= threads per block); 0 picks by size."),
                        32, true));
    t.push_back(size("NVRAR_BULK_MIN_BYTES", &Settings::bulk_min_bytes, "1M", 0, int64_t{1} << 40,
                     "Calls from this size move their intra-node phases in bulk form (plain units, one flag per "
                     "chunk), both executors; a tuning table's bulk field overrides it."));
    t.push_back(flag("NVRAR_BULK_SYNC", &Settings::bulk_sync, "0",
                     "GPU, bulk form: 0 a release store per flag and acquire polls; 1 one system-scope fence, relaxed "
                     "flag stores and polls, one fence after."));
    t.push_back(size("NVRAR_REGISTERED_MIN_BYTES", &Settings::registered_min_bytes, "1M", 0, int64_t{1} << 40,
                     "GPU, auto with a registered input on one node: the registered two-shot from this size up, "
                     "unless the tuning table picks the LL128 two-shot."));
    t.push_back(size("NVRAR_REGISTERED_OVER_LL128_BYTES", &Settings::registered_over_ll128_bytes, "32M", 0,
                     int64_t{1} << 40,
                     "GPU, auto with a registered input: from this size the registered two-shot also replaces the "
                     "tuning table's LL128 choice."));
    t.push_back(stepped(integer("NVRAR_PUSH_PIECE_UNITS", &Settings::push_piece_units, "512", 128, 1048576,
                                "units of 16 bytes",
                                "GPU, push two-shot: 16-byte units behind one flag where the table or the call names "
                                "none; must be the same on every rank."),
                        128, false));
    t.push_back(flag("NVRAR_PDL", &Settings::pdl, "1",
                     "GPU: 1 launches NVRAR's and the engine's kernels with programmatic dependent launch (Hopper and "
                     "later), 0 plain launches."));
    t.push_back(flag("NVRAR_DEBUG", &Settings::debug, "0",
                     "1: every rank prints the settings in force and each setup stage to stderr."));
    t.push_back(integer("NVRAR_POLL_SLEEP_NS", &Settings::poll_sleep_ns, "0", 0, 1000000, "nanoseconds",
                        "GPU: nanoseconds a waiting thread sleeps between failed polls of a cell (0: spin)."));
    t.push_back(flag("NVRAR_INTER_NODE_STORES", &Settings::inter_node_stores, "0",
                     "GPU: 1 stores inter-node cells through an NVLink peer pointer where the partner has one "
                     "(virtual nodes on one host); 0 always NVSHMEM puts."));
    Row algo = choice("NVRAR_ALGO", &Settings::algo, "auto", algorithm_names(),
                      "Algorithm of calls that name none and whose Options::algorithm is auto; auto: the tuning "
                      "table, else the cost model.");
    algo.problem = algorithm_problem;
    algo.choice_note = " (also the older twoshot, twoshot-registered, twoshot-ll128, twoshot-push)";
    t.push_back(std::move(algo));
    t.push_back(text("NVRAR_MODEL_PRESET", Type::kString, &Settings::model_preset, "h100-ndr400",
                     "Cost-model preset auto uses where no tuning table applies (checked when it is used)."));
    t.push_back(text("NVRAR_TUNING_FILE", Type::kPath, &Settings::tuning_file, "",
                     "Tuning table (nvrar-bench --tune) used where Options::tuning_file is empty; one for another "
                     "topology is an error."));
    t.push_back(text("NVRAR_TUNING_DIR", Type::kPath, &Settings::tuning_dir, "",
                     "Folder searched for a tuning table of this card and topology; unset: the tables shipped with "
                     "NVRAR."));
    // Read by Python (python/nvrar/_library.py, which documents the search order), declared here with the others.
    t.push_back(text("NVRAR_LIBRARY", Type::kPath, &Settings::python_library, "",
                     "Python package: the libnvrar_c.so to load (at run time, and the one pip bundles at install); "
                     "unset: the package's own copy, else the system's library path."));
    t.push_back(choice("NVRAR_TUNE", &Settings::tune, "auto", {"off", "auto", "force"},
                       "First-use tuning: auto measures a small table at communicator creation where no explicit or "
                       "shipped table applies and none is cached ($XDG_CACHE_HOME/nvrar); force always measures and "
                       "overwrites the cache; off never measures."));
    Row gemm = in_scope(choice("NVRAR_LLM_GEMM", &Settings::llm_gemm, "", {"cublaslt", "skinny0", "skinny1", "skinny2",
                                                                         "skinny3"},
                               "nvrar-llm: pins the GEMM kernel of every shape (a skinny variant where it takes the "
                               "shape, cuBLASLt elsewhere), or of the shapes listed (MxNxK=kernel, the form nvrar-llm "
                               "bench prints as its GEMM plan, so that a later run repeats its choices); unset: the "
                               "fastest of the timed candidates."),
                        kEngine);
    gemm.problem = gemm_pin_problem;  // config/gemm_pin.h, the parser the engine uses
    static const std::string list_note = std::string(", or ") + kGemmPinListForm;
    gemm.choice_note = list_note.c_str();
    t.push_back(std::move(gemm));
    t.push_back(in_scope(choice("NVRAR_LLM_PREFILL_ATTENTION", &Settings::llm_prefill_attention, "",
                                {"flash", "flash128", "wgmma", "wgmma2", "wgmma-tma", "wgmma-ws", "splitk"},
                                "nvrar-llm: the prefill attention kernel: flash (mma.sync tensor cores, 64-row query "
                                "tiles, head_dim 64/128/256), flash128 (128-row tiles at head_dim 64/128, flash at "
                                "256), wgmma (Hopper warpgroup MMA, compute capability 9.0 only, head_dim 64/128, "
                                "flash at 256), wgmma2 (wgmma with each warpgroup's softmax overlapped with its own "
                                "products and 128-key tiles, one block per SM; same limits as wgmma; measured within "
                                "~1% of wgmma), wgmma-tma (wgmma with K and V brought by TMA; same limits; "
                                "faster than wgmma by 1-4% at every measured shape on an H100), wgmma-ws (wgmma2's "
                                "products fed by a TMA producer warp, the two warpgroups taking turns at the tensor "
                                "cores; same limits; on an H100 at head_dim 128 a prefill 4.7% faster than with "
                                "wgmma-tma at 1 x 32768, 2.3% at 1 x 8192, within noise at 8 x 2048) or splitk (the "
                                "decode kernel, one query per row; slower, for comparison); unset: wgmma-ws on compute "
                                "capability 9.0 at head_dim 64/128, else flash (flash128 measured no faster than "
                                "flash)."),
                         kEngine));
    t.push_back(in_scope(choice("NVRAR_LLM_DECODE_ATTENTION", &Settings::llm_decode_attention, "",
                                {"splitk", "fused", "mma"},
                                "nvrar-llm: the decode attention: splitk (a partial kernel per key split, then a "
                                "combine kernel), fused (longer splits; the last block of each head group combines; "
                                "faster than splitk at every measured context and batch on one H200) or mma (fused's "
                                "splits and merge, dot products on tensor cores; head_dim 64 and 128, else fused; as "
                                "fast as fused or up to 3% faster per decode step on an H100); unset: mma."),
                         kEngine));
    t.push_back(in_scope(choice("NVRAR_LLM_DECODE_KERNEL", &Settings::llm_decode_kernel, "layers",
                                {"layers", "persistent"},
                                "nvrar-llm: how a decode step of 1-8 rows runs at TP 1 with bf16 activations: layers "
                                "launches ~7 kernels per layer; persistent runs every layer, the final norm and the "
                                "lm_head in one kernel with one block per SM, streaming the weights across the phase "
                                "boundaries (head_dim 64/128; its own CUDA-core attention; docs/engine.md). Measured "
                                "on one H100 (8B): correct (its tests, the fp32 check) but slower, 8.5 against 5.5 ms "
                                "per step at 1 x 128 in its latest form; so layers is the default. persistent refuses, "
                                "naming the cause, at TP > 1, with fp32 activations or residual, or for a model shape "
                                "it does not take; larger batches run the layers."),
                         kEngine));
    t.push_back(in_scope(choice("NVRAR_LLM_RESIDUAL", &Settings::llm_residual, "bf16", {"bf16", "fp32"},
                                "nvrar-llm: the residual stream's type: bf16 rounds it after each of a layer's two "
                                "residual adds, as transformers' bf16 Llama does; fp32 keeps it in fp32 (4 bytes per "
                                "element instead of 2; at TP > 1 the all-reduce, then an engine residual + RMSNorm "
                                "kernel, never NVRAR's one-shot with the two fused); measured on one H200: no smaller "
                                "error against fp32 than bf16 on the fp32 check's models."),
                         kEngine));
    t.push_back(in_scope(choice("NVRAR_LLM_ACTIVATIONS", &Settings::llm_activations, "bf16", {"bf16", "fp32"},
                                "nvrar-llm: bf16 rounds every GEMM output and RoPE's and SwiGLU's steps to bf16 where "
                                "transformers' bf16 Llama does (the residual stream: NVRAR_LLM_RESIDUAL); fp32 keeps "
                                "the GEMM outputs in fp32, computes RoPE and SwiGLU in fp32 and rounds them once, and "
                                "adds the o_proj and down_proj outputs to an fp32 residual stream (implies "
                                "NVRAR_LLM_RESIDUAL=fp32; at TP 1 inside the GEMMs, whatever NVRAR_LLM_FUSE_RESIDUAL "
                                "says; at TP > 1 the all-reduce sums fp32, twice the bytes): GEMM inputs, the KV cache "
                                "and the logits stay bf16. One H100: every step of the fp32 check within transformers' "
                                "bf16 error (0 of 100 steps over, bf16 19), prefill 8% slower at 8 x 2048, decode 0.5% "
                                "at 1 x 128; activations at a 16384-token chunk ~0.9 GB larger for 8B, ~1.9 GB for 70B "
                                "at TP 1 (docs/numerics.md)."),
                         kEngine));
    t.push_back(in_scope(flag("NVRAR_LLM_FUSE_EPILOGUE", &Settings::llm_fuse_epilogue, "1",
                              "nvrar-llm: 1 lets a decode step's skinny GEMMs do the next element-wise step on their "
                              "outputs (q/k/v: RoPE + KV append; gate/up: SwiGLU; the same bits), two kernels fewer "
                              "per layer where the skinny kernel was chosen; 0 runs those as kernels of their own."),
                         kEngine));
    t.push_back(in_scope(flag("NVRAR_LLM_FUSE_RESIDUAL", &Settings::llm_fuse_residual, "1",
                              "nvrar-llm: 1 lets o_proj and down_proj add their outputs into the bf16 residual "
                              "stream inside cuBLASLt's GEMM (at TP 1, where cuBLASLt runs the GEMM: over 8 rows, "
                              "e.g. prefill and batch 32), so the RMSNorm after them only normalises; one H100: "
                              "prefill 0.8-0.9% faster at 8 x 2048 and 1 x 8192; 0 writes the GEMM's output and runs "
                              "the residual add + RMSNorm kernel. With NVRAR_LLM_ACTIVATIONS=fp32 the GEMMs always "
                              "add into the fp32 stream at TP 1."),
                         kEngine));
    for (Row& r : t) r.accepted = accepted_text(r);
    return t;
  }();
  return table;
}

// Every member at its default. An empty default (an unset string) is left as the empty string.
Settings default_settings() {
  Settings s{};
  for (const Row& r : rows())
    if (*r.default_text != '\0') apply(r, r.default_text, s);
  return s;
}

const Settings& defaults() {
  static const Settings s = default_settings();
  return s;
}

}  // namespace detail

Settings read_settings(const std::function<const char*(const char*)>& getenv_fn) {
  Settings s = defaults();
  for (const Row& r : rows()) {
    const char* value = getenv_fn(r.name);
    if (value != nullptr && *value != '\0') apply(r, value, s);
  }
  return s;
}

const Settings& settings() {
  static const Settings s = read_settings([](const char* name) { return std::getenv(name); });
  return s;
}

}  // namespace nvrar::config
