// Every algorithm's real kernels at 2, 3, 4 and 8 ranks on one GPU (multirank_world.h): odd counts, the three types,
// in place, misaligned, registered inputs and outputs, back-to-back random calls, CUDA graphs and the fused RMSNorm,
// each result against a float64 reference and identical on every rank. Skipped without a GPU. For compute-sanitizer:
// NVRAR_TEST_SCALE=small trims the sizes, never the kinds of cases.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "check/verify.h"
#include "gpu/device/residual_rmsnorm.h"
#include "multirank_world.h"

namespace {

using nvrar::Algorithm;
using nvrar::Choice;
using nvrar::DataType;
using nvrar::gpu::CallArgs;
using nvrar::gpu::RegisteredBuffer;
using nvrar::test::World;
using nvrar::test::WorldShape;

constexpr DataType kTypes[] = {DataType::kFloat32, DataType::kBFloat16, DataType::kFloat16};

bool have_gpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}
bool small() {
  const char* s = std::getenv("NVRAR_TEST_SCALE");
  return s != nullptr && std::string(s) == "small";
}
void ok(cudaError_t e) { ASSERT_EQ(e, cudaSuccess) << cudaGetErrorString(e); }

struct DeviceBuffer {
  explicit DeviceBuffer(std::size_t bytes) { cudaMalloc(&p, bytes); }
  ~DeviceBuffer() { cudaFree(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  char* p = nullptr;
};

// The per-rank buffers of one call: inputs filled with fresh random data, outputs, and where they live.
struct Call {
  std::size_t count = 0;
  DataType dtype = DataType::kBFloat16;
  std::vector<std::vector<char>> host_in;
  std::vector<const void*> in;
  std::vector<void*> out;
  std::vector<const RegisteredBuffer*> in_buffer, out_buffer;
  std::vector<std::unique_ptr<DeviceBuffer>> owned;
  std::vector<std::vector<RegisteredBuffer>> registered;  // kept alive for the pointers above
};

enum Place { kSeparate, kInPlace, kMisaligned, kRegisteredIn, kRegisteredInOut };
const char* place_name(Place p) {
  static const char* names[] = {"separate", "in place", "misaligned", "registered input", "registered in+out"};
  return names[p];
}

Call make_call(World& w, std::size_t count, DataType dt, Place place, uint64_t seed) {
  Call c;
  c.count = count;
  c.dtype = dt;
  const std::size_t esize = nvrar::dtype_size(dt);
  const std::size_t shift = place == kMisaligned ? esize : 0;  // one element off 16-byte alignment
  const std::size_t bytes = count * esize + shift + 256;
  std::vector<RegisteredBuffer> in_reg, out_reg;
  if (place == kRegisteredIn || place == kRegisteredInOut) in_reg = w.allocate_buffer((bytes + 255) / 256 * 256);
  if (place == kRegisteredInOut) out_reg = w.allocate_buffer((bytes + 255) / 256 * 256);
  for (int r = 0; r < w.ranks(); ++r) {
    c.host_in.emplace_back(count * esize);
    nvrar::check::fill_random(c.host_in[r].data(), count, dt, seed, r);
    char* in = nullptr;
    char* out = nullptr;
    if (!in_reg.empty()) {
      in = in_reg[r].base;
    } else {
      c.owned.push_back(std::make_unique<DeviceBuffer>(bytes));
      in = c.owned.back()->p + shift;
    }
    if (!out_reg.empty()) {
      out = out_reg[r].base;
    } else if (place == kInPlace) {
      out = in;
    } else {
      c.owned.push_back(std::make_unique<DeviceBuffer>(bytes));
      out = c.owned.back()->p + shift;
    }
    cudaMemcpy(in, c.host_in[r].data(), count * esize, cudaMemcpyHostToDevice);
    c.in.push_back(in);
    c.out.push_back(out);
  }
  c.registered = {in_reg, out_reg};
  for (int r = 0; r < w.ranks(); ++r) {
    c.in_buffer.push_back(c.registered[0].empty() ? nullptr : &c.registered[0][r]);
    c.out_buffer.push_back(c.registered[1].empty() ? nullptr : &c.registered[1][r]);
  }
  return c;
}

CallArgs args(World& w, const Call& c, int r) {
  CallArgs a;
  a.in = c.in[r];
  a.out = c.out[r];
  a.count = c.count;
  a.dtype = c.dtype;
  a.bytes = c.count * nvrar::dtype_size(c.dtype);
  a.in_buffer = c.in_buffer[r];
  a.out_buffer = c.out_buffer[r];
  a.stream = w.stream(r);
  return a;
}

void launch(World& w, const Call& c, const Choice& choice) {
  for (int r = 0; r < w.ranks(); ++r) {
    const std::string why = w.algorithm(r, choice.algorithm).refusal(choice, args(w, c, r));
    ASSERT_TRUE(why.empty()) << why;
    ok(w.algorithm(r, choice.algorithm).launch(choice, args(w, c, r)));
  }
}

// Every rank's output against the float64 reference, and bitwise equal to rank 0's.
void verify(World& w, const Call& c, Algorithm a, const std::string& label) {
  const std::size_t bytes = c.count * nvrar::dtype_size(c.dtype);
  std::vector<const void*> inputs;
  for (const auto& h : c.host_in) inputs.push_back(h.data());
  const nvrar::check::Reference ref = nvrar::check::reference_sum(inputs, c.count, c.dtype);
  const int nodes = w.ranks() / w.shape().gpus_per_node;
  const int roundings = a == Algorithm::kHierarchical ? nvrar::check::hierarchical_roundings(nodes) : 1;
  std::vector<char> first(bytes), mine(bytes);
  for (int r = 0; r < w.ranks(); ++r) {
    ok(cudaMemcpy(r == 0 ? first.data() : mine.data(), c.out[r], bytes, cudaMemcpyDeviceToHost));
    const std::vector<char>& got = r == 0 ? first : mine;
    EXPECT_EQ(nvrar::check::count_wrong(got.data(), ref, c.count, c.dtype, roundings, w.ranks()), 0u)
        << label << ", rank " << r;
    if (r > 0) {
      EXPECT_EQ(std::memcmp(first.data(), mine.data(), bytes), 0) << label << ": rank " << r << " differs";
    }
  }
}

std::string label(const World& w, Algorithm a, DataType dt, std::size_t count, Place p) {
  return fmt::format("{} ranks as {} x {}, {}, {} x {}, {}", w.ranks(), w.ranks() / w.shape().gpus_per_node,
                     w.shape().gpus_per_node, nvrar::algorithm_name(a), count, nvrar::dtype_name(dt), place_name(p));
}

void run_one(World& w, Algorithm a, DataType dt, std::size_t count, Place p, uint64_t seed) {
  const Call c = make_call(w, count, dt, p, seed);
  launch(w, c, Choice{a});
  const std::string failure = w.synchronize();
  ASSERT_TRUE(failure.empty()) << label(w, a, dt, count, p) << ": " << failure;
  verify(w, c, a, label(w, a, dt, count, p));
}

// Whether entry `a` takes a call of `bytes` placed so (the registered two-shot only registered inputs, every entry
// only what fits its capacity): the matrix runs each entry on every placement it takes.
bool takes(World& w, Algorithm a, std::size_t bytes, Place p) {
  static const RegisteredBuffer stand_in;
  CallArgs probe;
  probe.bytes = bytes;
  if (p == kRegisteredIn || p == kRegisteredInOut) probe.in_buffer = &stand_in;
  if (p == kRegisteredInOut) probe.out_buffer = &stand_in;
  return w.algorithm(0, a).runs(probe);
}
constexpr Place kPlaces[] = {kSeparate, kInPlace, kMisaligned, kRegisteredIn, kRegisteredInOut};

std::vector<std::size_t> counts() {
  if (small()) return {1, 7, 1000, 4099};
  return {1, 7, 64, 1000, 4099, 65537, 300001};
}

// The correctness matrix on one (virtual) node: every NVLink-domain algorithm, type, odd count and placement.
void run_matrix(int ranks) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  World w(WorldShape{ranks, ranks});
  uint64_t seed = 1000 + ranks;
  for (Algorithm a : w.algorithms()) {  // every registry entry: all are available on one NVLink domain
    ASSERT_TRUE(w.algorithm(0, a).available()) << nvrar::algorithm_name(a) << ": " << w.algorithm(0, a).unavailable();
    int cases = 0;
    for (DataType dt : kTypes)
      for (std::size_t count : counts())
        for (Place p : kPlaces)
          if (takes(w, a, count * nvrar::dtype_size(dt), p)) {
            run_one(w, a, dt, count, p, nvrar::check::mix_seed(++seed));
            ++cases;
          }
    EXPECT_GE(cases, 3 * 4) << nvrar::algorithm_name(a) << " ran too few cases";
  }
}

TEST(MultiRank, Matrix2Ranks) { run_matrix(2); }
TEST(MultiRank, Matrix3Ranks) { run_matrix(3); }
TEST(MultiRank, Matrix4Ranks) { run_matrix(4); }
TEST(MultiRank, Matrix8Ranks) { run_matrix(8); }

// Virtual nodes: the hierarchical algorithm's fold and recursive doubling (powers of two and not), the NVLink-domain
// algorithms off.
TEST(MultiRank, HierarchicalAcrossVirtualNodes) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  const std::pair<int, int> shapes[] = {{2, 1}, {3, 1}, {4, 2}, {4, 1}, {6, 2}, {8, 2}, {8, 4}, {8, 1}};
  uint64_t seed = 77;
  for (auto [ranks, g] : shapes) {
    World w(WorldShape{ranks, g});
    EXPECT_FALSE(w.algorithm(0, Algorithm::kOneShot).available());
    EXPECT_NE(w.algorithm(0, Algorithm::kOneShot).refusal(Choice{Algorithm::kOneShot}, CallArgs{}), "");
    for (DataType dt : kTypes)
      for (std::size_t count : counts())
        for (Place p : {kSeparate, kInPlace, kMisaligned})
          run_one(w, Algorithm::kHierarchical, dt, count, p, nvrar::check::mix_seed(++seed));
  }
}

// Calls back to back with no synchronisation between them: random algorithm, size and type each time; every result
// checked at the end. Exercises the epochs, parities and flag reuse of each protocol.
TEST(MultiRank, BackToBackRandomCalls) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  for (int ranks : {2, 3, 4, 8}) {
    World w(WorldShape{ranks, ranks});
    std::mt19937_64 rng(4242 + ranks);
    std::vector<Call> calls;
    std::vector<Algorithm> algorithms;
    const int n = small() ? 12 : 60;
    for (int i = 0; i < n; ++i) {
      const std::vector<Algorithm> all = w.algorithms();
      const Algorithm a = all[rng() % all.size()];
      const DataType dt = kTypes[rng() % 3];
      const std::size_t count = 1 + rng() % (small() ? 5000 : 200000);
      Place p = kPlaces[rng() % std::size(kPlaces)];
      while (!takes(w, a, count * nvrar::dtype_size(dt), p)) p = kPlaces[rng() % std::size(kPlaces)];
      calls.push_back(make_call(w, count, dt, p, nvrar::check::mix_seed(rng())));
      algorithms.push_back(a);
    }
    for (int i = 0; i < n; ++i) launch(w, calls[i], Choice{algorithms[i]});
    const std::string failure = w.synchronize();
    ASSERT_TRUE(failure.empty()) << ranks << " ranks: " << failure;
    for (int i = 0; i < n; ++i)
      verify(w, calls[i], algorithms[i], fmt::format("call {} of {} ({})", i, n, nvrar::algorithm_name(algorithms[i])));
  }
}

// Each rank's call captured in a CUDA graph, replayed three times with fresh inputs in between.
TEST(MultiRank, GraphReplays) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  for (int ranks : {2, 4, 8}) {
    World w(WorldShape{ranks, ranks});
    for (Algorithm a : w.algorithms()) {
      const std::size_t count = 12345;
      const Place p = takes(w, a, count * 2, kSeparate) ? kSeparate : kRegisteredIn;
      Call c = make_call(w, count, DataType::kBFloat16, p, 9);
      std::vector<cudaGraphExec_t> execs(ranks);
      for (int r = 0; r < ranks; ++r) {
        cudaGraph_t g = nullptr;
        ok(cudaStreamBeginCapture(w.stream(r), cudaStreamCaptureModeThreadLocal));
        ok(w.algorithm(r, a).launch(Choice{a}, args(w, c, r)));
        ok(cudaStreamEndCapture(w.stream(r), &g));
        ok(cudaGraphInstantiate(&execs[r], g, 0));
        cudaGraphDestroy(g);
      }
      for (int replay = 0; replay < 3; ++replay) {
        for (int r = 0; r < ranks; ++r) {
          nvrar::check::fill_random(c.host_in[r].data(), c.count, c.dtype, nvrar::check::mix_seed(replay * 100 + r), r);
          ok(cudaMemcpy(const_cast<void*>(c.in[r]), c.host_in[r].data(), c.host_in[r].size(), cudaMemcpyHostToDevice));
        }
        for (int r = 0; r < ranks; ++r) ok(cudaGraphLaunch(execs[r], w.stream(r)));
        const std::string failure = w.synchronize();
        ASSERT_TRUE(failure.empty()) << failure;
        verify(w, c, a, fmt::format("{} ranks, {} graph replay {}", ranks, nvrar::algorithm_name(a), replay));
      }
      for (auto e : execs) cudaGraphExecDestroy(e);
    }
  }
}

// The one-shot's fused all-reduce + residual + RMSNorm equals, bit for bit, the all-reduce followed by the unfused
// residual + RMSNorm kernel (whose all-reduce part is checked against float64 above); also with x aliasing out.
TEST(MultiRank, FusedRmsNormMatchesUnfused) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  for (int ranks : {2, 3, 4, 8}) {
    World w(WorldShape{ranks, ranks});
    for (DataType dt : kTypes)
      for (auto [rows, hidden] : {std::pair<std::size_t, std::size_t>{1, 8}, {3, 1024}, {8, 4096}, {5, 520}}) {
        if (hidden * nvrar::dtype_size(dt) % 16 != 0) continue;
        const std::size_t count = rows * hidden, bytes = count * nvrar::dtype_size(dt);
        const Call c = make_call(w, count, dt, kSeparate, 31 * ranks + rows);
        std::vector<std::vector<char>> res(ranks, std::vector<char>(bytes)), weight(1, std::vector<char>(hidden * 4));
        nvrar::check::fill_random(weight[0].data(), hidden, dt, 5, 0);
        DeviceBuffer d_w(hidden * 4);
        ok(cudaMemcpy(d_w.p, weight[0].data(), hidden * nvrar::dtype_size(dt), cudaMemcpyHostToDevice));
        std::vector<std::unique_ptr<DeviceBuffer>> res_fused, res_plain, out_fused;
        for (int r = 0; r < ranks; ++r) {
          nvrar::check::fill_random(res[r].data(), count, dt, 17, r);
          for (auto* v : {&res_fused, &res_plain, &out_fused}) {
            v->push_back(std::make_unique<DeviceBuffer>(bytes));
            ok(cudaMemcpy(v->back()->p, res[r].data(), bytes, cudaMemcpyHostToDevice));
          }
        }
        const float eps = 1e-5f;
        for (int r = 0; r < ranks; ++r) {
          CallArgs a = args(w, c, r);
          a.out = out_fused[r]->p;
          cudaError_t e = cudaSuccess;
          ASSERT_TRUE(
              w.algorithm(r, Algorithm::kOneShot)
                  .launch_add_rmsnorm(Choice{Algorithm::kOneShot}, a, {res_fused[r]->p, d_w.p, rows, hidden, eps}, &e));
          ok(e);
        }
        ASSERT_EQ(w.synchronize(), "");
        launch(w, c, Choice{Algorithm::kOneShot});
        ASSERT_EQ(w.synchronize(), "");
        verify(w, c, Algorithm::kOneShot, "the all-reduce under the RMSNorm");
        for (int r = 0; r < ranks; ++r)
          ok(nvrar::gpu::launch_residual_rmsnorm(c.out[r], res_plain[r]->p, d_w.p, c.out[r], static_cast<int64_t>(rows),
                                                 static_cast<int64_t>(hidden), eps, dt, w.stream(r)));
        ASSERT_EQ(w.synchronize(), "");
        std::vector<char> f(bytes), p(bytes), fr(bytes), pr(bytes);
        for (int r = 0; r < ranks; ++r) {
          ok(cudaMemcpy(f.data(), out_fused[r]->p, bytes, cudaMemcpyDeviceToHost));
          ok(cudaMemcpy(p.data(), c.out[r], bytes, cudaMemcpyDeviceToHost));
          ok(cudaMemcpy(fr.data(), res_fused[r]->p, bytes, cudaMemcpyDeviceToHost));
          ok(cudaMemcpy(pr.data(), res_plain[r]->p, bytes, cudaMemcpyDeviceToHost));
          const std::string where =
              fmt::format("{} ranks, rank {}, {} x {} {}", ranks, r, rows, hidden, nvrar::dtype_name(dt));
          EXPECT_EQ(std::memcmp(f.data(), p.data(), bytes), 0) << "normed output, " << where;
          EXPECT_EQ(std::memcmp(fr.data(), pr.data(), bytes), 0) << "residual, " << where;
        }
      }
  }
}

// What an explicit request the call cannot run is told, per entry (the communicator prefixes rank and call).
TEST(MultiRank, EntriesRefuseWhatTheyCannotRun) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  World w(WorldShape{4, 4});
  CallArgs big;
  big.bytes = std::size_t{64} << 20;  // above every capacity of the world
  for (Algorithm a : w.algorithms())
    EXPECT_NE(w.algorithm(0, a).refusal(Choice{a}, big), "") << nvrar::algorithm_name(a);
  CallArgs plain;
  plain.bytes = 4096;
  EXPECT_NE(
      w.algorithm(0, Algorithm::kRegistered).refusal(Choice{Algorithm::kRegistered}, plain).find("allocate_buffer"),
      std::string::npos);
  EXPECT_NE(w.algorithm(0, Algorithm::kLl128).refusal(Choice{Algorithm::kLl128, 48}, plain), "");  // threads % 32
  EXPECT_NE(w.algorithm(0, Algorithm::kPush).refusal(Choice{Algorithm::kPush, 0, 0, -1, 100}, plain), "");  // pieces
  EXPECT_EQ(w.algorithm(0, Algorithm::kOneShot).refusal(Choice{Algorithm::kOneShot}, plain), "");
}

}  // namespace
