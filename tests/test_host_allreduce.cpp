// The hierarchical all-reduce on the CPU executor, against a float64 reference, on every rank.
//
// Both forms of the intra-node phases (flagged cells; bulk data + chunk flags) run, mixed back to back.
// Matrix: every (N nodes, G GPUs per node) with P = N x G <= 64 (N and G not powers of two included); counts
// 1, 2, 3, G-1, G+1, primes and larger; fp32, bf16, fp16; bitwise equality across ranks. Then millions of
// elements on a few topologies, 1000 back-to-back calls of random sizes without any barrier, and bad input.
// NVRAR_TEST_SCALE=small (the ThreadSanitizer run) trims sizes, never the kinds of cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "check/verify.h"
#include "nvrar/host_executor.h"

namespace {

using nvrar::DataType;
using nvrar::HostGroup;
using nvrar::HostGroupOptions;

bool small_scale() {
  const char* s = std::getenv("NVRAR_TEST_SCALE");
  return s != nullptr && std::string(s) == "small";
}

const DataType kAllTypes[] = {DataType::kFloat32, DataType::kBFloat16, DataType::kFloat16};

struct Case {
  std::size_t count;
  DataType dtype;
  bool in_place;
};

// Runs `cases` on every rank of `group` (one thread per rank, barriers between cases), checking every rank's
// output against the float64 reference and against rank 0's output bit for bit. Returns failure descriptions.
std::vector<std::string> run_and_verify(HostGroup& group, const std::vector<Case>& cases, uint64_t seed) {
  const int P = group.size();
  const int roundings = nvrar::check::hierarchical_roundings(group.nodes());
  std::size_t max_elems = 0;
  for (const Case& c : cases) max_elems = std::max(max_elems, c.count);
  std::vector<std::vector<unsigned char>> in(P, std::vector<unsigned char>(max_elems * 4));
  std::vector<std::vector<unsigned char>> out(P, std::vector<unsigned char>(max_elems * 4));
  std::vector<std::vector<unsigned char>> saved_in(P);
  std::vector<std::string> failures;
  std::vector<std::vector<std::string>> rank_failures(P);
  nvrar::check::Reference ref;
  std::barrier sync(P);

  auto worker = [&](int r) {
    for (std::size_t i = 0; i < cases.size(); ++i) {
      const Case& c = cases[i];
      const std::size_t bytes = c.count * nvrar::dtype_size(c.dtype);
      nvrar::check::fill_random(in[r].data(), c.count, c.dtype, seed + i, r);
      std::memset(out[r].data(), 0xA5, bytes);  // poison: every element must be written
      if (c.in_place) std::memcpy(out[r].data(), in[r].data(), bytes);
      sync.arrive_and_wait();
      if (r == 0) {
        std::vector<const void*> inputs;
        for (int q = 0; q < P; ++q) inputs.push_back(in[q].data());
        ref = nvrar::check::reference_sum(inputs, c.count, c.dtype);
      }
      sync.arrive_and_wait();
      try {
        group.comm(r).allreduce(c.in_place ? out[r].data() : in[r].data(), out[r].data(), c.count, c.dtype);
      } catch (const std::exception& e) {
        rank_failures[r].push_back(e.what());
        sync.arrive_and_drop();
        return;
      }
      sync.arrive_and_wait();
      const std::size_t wrong = nvrar::check::count_wrong(out[r].data(), ref, c.count, c.dtype, roundings, P);
      const bool same = std::memcmp(out[r].data(), out[0].data(), bytes) == 0;
      if (wrong != 0 || !same)
        rank_failures[r].push_back("rank " + std::to_string(r) + " count " + std::to_string(c.count) + " " +
                                   nvrar::dtype_name(c.dtype) + (c.in_place ? " in-place" : "") + ": " +
                                   std::to_string(wrong) + " wrong, " + (same ? "" : "differs from rank 0"));
      sync.arrive_and_wait();
    }
  };
  std::vector<std::thread> threads;
  for (int r = 0; r < P; ++r) threads.emplace_back(worker, r);
  for (auto& t : threads) t.join();
  for (auto& f : rank_failures) failures.insert(failures.end(), f.begin(), f.end());
  return failures;
}

// ---- every (N, G) with N x G <= 64 ----

class AllTopologies : public ::testing::TestWithParam<int> {};

TEST_P(AllTopologies, MatchesReferenceOnEveryRankForEverySplit) {
  const int P = GetParam();
  for (int G = 1; G <= P; ++G) {
    if (P % G != 0) continue;
    std::vector<std::size_t> counts = {1, 2, 3, 5, 13, 127, 1031};
    if (G > 1) counts.push_back(static_cast<std::size_t>(G - 1));
    counts.push_back(static_cast<std::size_t>(G + 1));
    counts.push_back(small_scale() ? 4099 : 16411);
    std::vector<Case> cases;
    for (DataType dt : kAllTypes)
      for (std::size_t n : counts) cases.push_back({n, dt, /*in_place=*/n % 2 == 1 && n > 3});
    HostGroupOptions opt;
    opt.ranks = P;
    opt.gpus_per_node = G;
    opt.max_bytes = 16411 * 4;
    opt.chunk_units = (P + G) % 3 == 0 ? 1 : 7;  // vary the chunking: one unit per chunk exercises many chunks
    opt.bulk_min_bytes = 2000;  // calls of 2000+ bytes in bulk form, smaller ones in cells, mixed back to back
    HostGroup group(opt);
    const auto failures = run_and_verify(group, cases, 1000 + P * 100 + G);
    EXPECT_TRUE(failures.empty()) << "P=" << P << " G=" << G << ": " << failures.size() << " failures, first: "
                                  << (failures.empty() ? "" : failures.front());
  }
}

std::vector<int> all_rank_counts() {
  std::vector<int> ps;
  const int max_p = small_scale() ? 24 : 64;
  for (int p = 1; p <= max_p; ++p) ps.push_back(p);
  return ps;
}

INSTANTIATE_TEST_SUITE_P(Ranks, AllTopologies, ::testing::ValuesIn(all_rank_counts()),
                         [](const ::testing::TestParamInfo<int>& info) { return "P" + std::to_string(info.param); });

// ---- millions of elements ----

struct LargeCase {
  int ranks;
  int gpus_per_node;
};

class LargeCounts : public ::testing::TestWithParam<LargeCase> {};

TEST_P(LargeCounts, MillionsOfElements) {
  const LargeCase lc = GetParam();
  const std::size_t count = small_scale() ? 300007 : 3000017;  // primes: uneven slices and chunks
  HostGroupOptions opt;
  opt.ranks = lc.ranks;
  opt.gpus_per_node = lc.gpus_per_node;
  opt.max_bytes = count * 4;
  opt.chunk_units = 256;  // bulk form (default threshold 512 KiB) for all three calls
  HostGroup group(opt);
  std::vector<Case> cases = {{count, DataType::kFloat32, false}, {count, DataType::kBFloat16, true},
                             {count / 2 + 1, DataType::kFloat16, false}};
  const auto failures = run_and_verify(group, cases, 77);
  EXPECT_TRUE(failures.empty()) << failures.size() << " failures, first: " << (failures.empty() ? "" : failures.front());
}

INSTANTIATE_TEST_SUITE_P(Topologies, LargeCounts,
                         ::testing::Values(LargeCase{4, 2}, LargeCase{6, 3}, LargeCase{5, 1}, LargeCase{6, 6},
                                           LargeCase{9, 3}),
                         [](const ::testing::TestParamInfo<LargeCase>& info) {
                           return "N" + std::to_string(info.param.ranks / info.param.gpus_per_node) + "xG" +
                                  std::to_string(info.param.gpus_per_node);
                         });

// ---- 1000 back-to-back calls of random sizes, no barrier in between ----

struct BackToBack {
  int ranks;
  int gpus_per_node;
  bool async_puts;
};

class BackToBackCalls : public ::testing::TestWithParam<BackToBack> {};

TEST_P(BackToBackCalls, ThousandRandomSizesWithoutBarrier) {
  const BackToBack b = GetParam();
  const int P = b.ranks;
  const int calls = 1000;
  const std::size_t max_count = small_scale() ? 2000 : 20000;
  // The call sequence (sizes, types, in-place) is drawn once and is the same on every rank.
  std::mt19937_64 rng(4242 + P);
  std::vector<Case> cases;
  for (int i = 0; i < calls; ++i) {
    const double u = std::uniform_real_distribution<double>(0.0, std::log(static_cast<double>(max_count)))(rng);
    const std::size_t count = std::max<std::size_t>(1, static_cast<std::size_t>(std::exp(u)));
    cases.push_back({count, kAllTypes[rng() % 3], rng() % 4 == 0});
  }
  HostGroupOptions opt;
  opt.ranks = P;
  opt.gpus_per_node = b.gpus_per_node;
  opt.max_bytes = max_count * 4;
  opt.chunk_units = 5;
  opt.bulk_min_bytes = 4096;  // about half the calls in bulk form, interleaved with cell-form calls
  opt.async_puts = b.async_puts;
  HostGroup group(opt);
  // Each rank keeps its inputs and outputs of all calls and checks them only after the last call.
  std::vector<std::vector<std::vector<unsigned char>>> ins(P), outs(P);
  std::vector<std::string> errors(P);
  auto worker = [&](int r) {
    try {
      for (int i = 0; i < calls; ++i) {
        const Case& c = cases[i];
        const std::size_t bytes = c.count * nvrar::dtype_size(c.dtype);
        ins[r].emplace_back(bytes);
        outs[r].emplace_back(bytes, 0x5A);
        nvrar::check::fill_random(ins[r][i].data(), c.count, c.dtype, 900000 + i, r);
        if (c.in_place) {
          std::memcpy(outs[r][i].data(), ins[r][i].data(), bytes);
          group.comm(r).allreduce(outs[r][i].data(), outs[r][i].data(), c.count, c.dtype);
        } else {
          group.comm(r).allreduce(ins[r][i].data(), outs[r][i].data(), c.count, c.dtype);
        }
      }
    } catch (const std::exception& e) {
      errors[r] = e.what();
    }
  };
  std::vector<std::thread> threads;
  for (int r = 0; r < P; ++r) threads.emplace_back(worker, r);
  for (auto& t : threads) t.join();
  for (int r = 0; r < P; ++r) ASSERT_TRUE(errors[r].empty()) << errors[r];

  const int roundings = nvrar::check::hierarchical_roundings(group.nodes());
  int bad_calls = 0;
  for (int i = 0; i < calls; ++i) {
    const Case& c = cases[i];
    std::vector<const void*> inputs;
    for (int r = 0; r < P; ++r) inputs.push_back(ins[r][i].data());
    const auto ref = nvrar::check::reference_sum(inputs, c.count, c.dtype);
    for (int r = 0; r < P; ++r) {
      const std::size_t wrong = nvrar::check::count_wrong(outs[r][i].data(), ref, c.count, c.dtype, roundings, P);
      const bool same = outs[r][i] == outs[0][i];
      if (wrong != 0 || !same) {
        if (++bad_calls <= 5)
          ADD_FAILURE() << "call " << i << " rank " << r << " count " << c.count << " " << nvrar::dtype_name(c.dtype)
                        << ": " << wrong << " wrong" << (same ? "" : ", differs from rank 0");
      }
    }
  }
  EXPECT_EQ(bad_calls, 0);
}

INSTANTIATE_TEST_SUITE_P(Topologies, BackToBackCalls,
                         ::testing::Values(BackToBack{12, 4, true}, BackToBack{15, 3, true}, BackToBack{6, 1, true},
                                           BackToBack{8, 2, false}),
                         [](const ::testing::TestParamInfo<BackToBack>& info) {
                           return "N" + std::to_string(info.param.ranks / info.param.gpus_per_node) + "xG" +
                                  std::to_string(info.param.gpus_per_node) +
                                  (info.param.async_puts ? "_async" : "_sync");
                         });

// ---- bad input: clear errors, no crash, no hang ----

// Runs fn(rank) on every rank in its own thread and returns each rank's error message ("" if none).
std::vector<std::string> on_every_rank(int P, const std::function<void(int)>& fn) {
  std::vector<std::string> errors(P);
  std::vector<std::thread> threads;
  for (int r = 0; r < P; ++r)
    threads.emplace_back([&, r] {
      try {
        fn(r);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

TEST(BadInput, RanksNotDivisibleByGpusPerNodeIsRejected) {
  HostGroupOptions opt;
  opt.ranks = 12;
  opt.gpus_per_node = 5;
  try {
    HostGroup group(opt);
    FAIL() << "expected an error";
  } catch (const nvrar::Error& e) {
    EXPECT_NE(std::string(e.what()).find("12 ranks is not a whole number of nodes of 5"), std::string::npos) << e.what();
  }
}

TEST(BadInput, NullPointersAreRejectedNamingTheRank) {
  HostGroup group({.ranks = 2, .gpus_per_node = 2, .max_bytes = 1024});
  std::vector<float> buf(8, 1.0f);
  try {
    group.comm(1).allreduce(nullptr, buf.data(), 8, DataType::kFloat32);
    FAIL() << "expected an error";
  } catch (const nvrar::Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1 allreduce: input pointer is null"), std::string::npos) << e.what();
  }
  EXPECT_THROW(group.comm(0).allreduce(buf.data(), nullptr, 8, DataType::kFloat32), nvrar::Error);
}

TEST(BadInput, CountZeroIsANoOpAndUsesNoEpoch) {
  HostGroup group({.ranks = 3, .gpus_per_node = 3, .max_bytes = 1024});
  // Rank 0 makes an extra count-0 call, even with null pointers; the next real call must still match up.
  std::vector<std::vector<float>> in(3, std::vector<float>(10)), out(3, std::vector<float>(10, -7.0f));
  for (int r = 0; r < 3; ++r)
    for (int i = 0; i < 10; ++i) in[r][i] = static_cast<float>(r * 10 + i);
  const auto errors = on_every_rank(3, [&](int r) {
    if (r == 0) group.comm(0).allreduce(nullptr, nullptr, 0, DataType::kFloat32);
    group.comm(r).allreduce(in[r].data(), out[r].data(), 10, DataType::kFloat32);
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
  for (int r = 0; r < 3; ++r)
    for (int i = 0; i < 10; ++i) EXPECT_EQ(out[r][i], static_cast<float>(30 + 3 * i));
}

TEST(BadInput, CountOverCapacityIsRejected) {
  HostGroup group({.ranks = 2, .gpus_per_node = 1, .max_bytes = 4096});
  std::vector<uint16_t> buf(2049);
  try {
    group.comm(0).allreduce(buf.data(), buf.data(), 2049, DataType::kBFloat16);
    FAIL() << "expected an error";
  } catch (const nvrar::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("rank 0"), std::string::npos) << msg;
    EXPECT_NE(msg.find("exceeds the communicator's capacity of 4096 bytes"), std::string::npos) << msg;
  }
}

TEST(BadInput, UnsupportedDtypeIsRejected) {
  HostGroup group({.ranks = 1, .gpus_per_node = 1, .max_bytes = 1024});
  std::vector<float> buf(4);
  try {
    group.comm(0).allreduce(buf.data(), buf.data(), 4, static_cast<DataType>(7));
    FAIL() << "expected an error";
  } catch (const nvrar::Error& e) {
    EXPECT_NE(std::string(e.what()).find("unsupported dtype value 7"), std::string::npos) << e.what();
  }
}

TEST(BadInput, MissingPeerTimesOutNamingPeerAndPhaseThenCommunicatorIsPoisoned) {
  // Rank 3 never calls: rank 2 (its intra-node peer) must fail within the timeout, naming rank 3.
  HostGroup group({.ranks = 4, .gpus_per_node = 2, .max_bytes = 1024, .timeout_ms = 200});
  std::vector<std::vector<float>> buf(4, std::vector<float>(64, 1.0f));
  const auto errors = on_every_rank(4, [&](int r) {
    if (r != 3) group.comm(r).allreduce(buf[r].data(), buf[r].data(), 64, DataType::kFloat32);
  });
  EXPECT_NE(errors[2].find("rank 2 (node 1, local 0) allreduce call 1: timed out after 200 ms"), std::string::npos)
      << errors[2];
  EXPECT_NE(errors[2].find("waiting for rank 3"), std::string::npos) << errors[2];
  EXPECT_EQ(errors[3], "");
  // A communicator whose call failed refuses further calls instead of mixing up epochs.
  try {
    group.comm(2).allreduce(buf[2].data(), buf[2].data(), 64, DataType::kFloat32);
    FAIL() << "expected an error";
  } catch (const nvrar::Error& e) {
    EXPECT_NE(std::string(e.what()).find("unusable after an earlier failure"), std::string::npos) << e.what();
  }
}

TEST(BadInput, MissingRemoteNodeTimesOutInTheInterNodePhase) {
  // 3 nodes of 1: node 2 is folded into node 0; with node 2 absent, rank 0 waits in the fold-in.
  HostGroup group({.ranks = 3, .gpus_per_node = 1, .max_bytes = 1024, .timeout_ms = 200});
  std::vector<std::vector<float>> buf(3, std::vector<float>(16, 1.0f));
  const auto errors = on_every_rank(3, [&](int r) {
    if (r != 2) group.comm(r).allreduce(buf[r].data(), buf[r].data(), 16, DataType::kFloat32);
  });
  EXPECT_NE(errors[0].find("inter-node fold-in waiting for rank 2"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find("inter-node recursive doubling step 0 waiting for rank 0"), std::string::npos) << errors[1];
}

}  // namespace
