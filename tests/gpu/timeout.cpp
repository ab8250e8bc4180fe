// --suite timeout and --suite mismatch (suites.h): a missing peer, or a peer passing another registered offset,
// must end every waiting rank's call with an nvrar::Error naming another rank, within seconds.
#include <cuda_runtime_api.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "harness.h"
#include "suites.h"

namespace gpu_allreduce_test {

[[noreturn]] void run_timeout(const Ctx& ctx, bool mismatch) {
  const std::size_t count = 4096;  // every rank owns a slice
  // Registered buffers are allocated collectively, so before the skipper leaves; twice the call for the offset.
  const bool registered = mismatch || ctx.timeout_algorithm == Algorithm::kRegistered;
  DeviceBuffer buf(2 * count * sizeof(float), registered ? Memory::kRegistered : Memory::kPlain, ctx.comm);
  const int skipper = mismatch ? -1 : ctx.size - 1;
  if (ctx.rank == skipper) {
    fmt::print("test_gpu_allreduce: rank {} skips its call on purpose\n", ctx.rank);
    std::fflush(stdout);
    // Long enough for the others to time out (300 ms) and report before this process goes.
    std::this_thread::sleep_for(std::chrono::seconds(2));
    leave(0);
  }
  // 300 ms timeout; the rest is kernel launch and first-call module loading, with a wide margin.
  constexpr auto kLimit = std::chrono::seconds(10);
  // A hang is the failure this suite exists to rule out: report it instead of waiting for the job's time limit.
  static std::atomic<bool> done{false};
  std::thread([rank = ctx.rank] {
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (!done.load() && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (done.load()) return;
    fmt::print("  FAIL [timeout] rank {}: still waiting 60 s after the call: the missing peer was never detected\n",
               rank);
    if (rank == 0) fmt::print("test_gpu_allreduce: 0 passed, 1 failed\n");
    hard_exit(1);
  }).detach();

  CHECK_CUDA(cudaMemsetAsync(buf.get(), 0, buf.bytes(), ctx.stream));
  const auto t0 = Clock::now();
  bool got_error = false;
  std::string message;
  try {
    auto* data = reinterpret_cast<float*>(buf.get()) + (mismatch && ctx.rank == 0 ? count : 0);
    ctx.comm->allreduce(data, data, count, DataType::kFloat32, ctx.stream,
                        mismatch ? Algorithm::kRegistered : ctx.timeout_algorithm);
    ctx.comm->synchronize(ctx.stream);
  } catch (const nvrar::Error& e) {
    got_error = true;
    message = e.what();
  } catch (const std::exception& e) {
    message = fmt::format("(not an nvrar::Error) {}", e.what());
  }
  const auto elapsed = Clock::now() - t0;
  done.store(true);
  const long ms = static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count());

  int named_peer = -1;
  const std::regex rank_re("rank (\\d+)");
  for (auto it = std::sregex_iterator(message.begin(), message.end(), rank_re); it != std::sregex_iterator(); ++it) {
    const int r = std::stoi((*it)[1].str());
    if (r != ctx.rank) {
      named_peer = r;
      break;
    }
  }
  std::vector<std::string> problems;
  if (!got_error) problems.push_back(message.empty() ? "no error reported" : message);
  const char* const expected = mismatch ? "called with another" : "timed out";
  if (got_error && message.find(expected) == std::string::npos)
    problems.push_back(fmt::format("message lacks \"{}\"", expected));
  if (got_error && named_peer < 0) problems.push_back("message names no other rank");
  if (elapsed > kLimit) problems.push_back(fmt::format("reported after {} ms (limit {} s)", ms, kLimit.count()));
  std::string why;
  for (const std::string& p : problems) why += (why.empty() ? "" : "; ") + p;
  if (problems.empty())
    fmt::print("  rank {} PASS [{}] reported after {} ms, naming rank {}: {}\n", ctx.rank,
               mismatch ? "mismatch" : "timeout", ms, named_peer, message);
  else
    fmt::print("  rank {} FAIL [{}] {}; message: {}\n", ctx.rank, mismatch ? "mismatch" : "timeout", why,
               message.empty() ? "(none)" : message);
  if (ctx.rank == 0)
    fmt::print("test_gpu_allreduce: {} passed, {} failed\n", problems.empty() ? 1 : 0, problems.empty() ? 0 : 1);
  leave(problems.empty() ? 0 : 1);
}
}  // namespace gpu_allreduce_test
