#include "host/host_transport.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "nvrar/types.h"

namespace nvrar::host {

namespace {

constexpr std::size_t kHeapAlignment = 64;
constexpr int kSpinsBeforeYield = 64;

std::atomic_ref<uint64_t> word_at(std::byte* base, std::size_t offset) {
  return std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(base + offset));
}

}  // namespace

void HostTransport::AlignedFree::operator()(std::byte* p) const { std::free(p); }

HostTransport::HostTransport(int nranks, std::size_t heap_bytes, bool async_puts)
    : nranks_(nranks), heap_bytes_((heap_bytes + kHeapAlignment - 1) / kHeapAlignment * kHeapAlignment),
      async_(async_puts) {
  heaps_.reserve(nranks);
  for (int r = 0; r < nranks; ++r) {
    auto* p = static_cast<std::byte*>(std::aligned_alloc(kHeapAlignment, heap_bytes_));
    if (p == nullptr)
      throw Error("nvrar: host executor: cannot allocate a symmetric heap of " + std::to_string(heap_bytes_) +
                  " bytes for rank " + std::to_string(r));
    std::memset(p, 0, heap_bytes_);
    heaps_.emplace_back(p);
  }
  if (async_) delivery_ = std::thread([this] { delivery_loop(); });
}

HostTransport::~HostTransport() {
  if (async_) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_work_.notify_all();
    delivery_.join();
  }
}

void HostTransport::store_cells(int dst, std::size_t offset, const uint64_t* cells, std::size_t n) {
  std::byte* base = heap(dst);
  for (std::size_t i = 0; i < n; ++i) word_at(base, offset + 8 * i).store(cells[i], std::memory_order_release);
}

uint64_t HostTransport::load_cell(int rank, std::size_t offset) {
  return word_at(heap(rank), offset).load(std::memory_order_acquire);
}

void HostTransport::store_bytes(int dst, std::size_t offset, const void* src, std::size_t bytes) {
  std::memcpy(heap(dst) + offset, src, bytes);
}

void HostTransport::store_flag(int dst, std::size_t offset, uint64_t value) {
  word_at(heap(dst), offset).store(value, std::memory_order_release);
}

void HostTransport::put(int dst, std::size_t dst_offset, const void* src, std::size_t bytes) {
  enqueue(PendingPut{dst, dst_offset, std::vector<std::byte>(bytes), false, 0, 0}, src);
}

void HostTransport::put_signal(int dst, std::size_t dst_offset, const void* src, std::size_t bytes,
                               std::size_t sig_offset, uint64_t value) {
  enqueue(PendingPut{dst, dst_offset, std::vector<std::byte>(bytes), true, sig_offset, value}, src);
}

void HostTransport::enqueue(PendingPut p, const void* src) {
  std::memcpy(p.data.data(), src, p.data.size());  // the source is reusable when put returns
  if (!async_) {
    deliver(p);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.push_back(std::move(p));
  }
  cv_work_.notify_one();
}

void HostTransport::deliver(const PendingPut& p) {
  std::byte* base = heap(p.dst);
  const std::size_t n = p.data.size();
  if (n % 8 == 0 && p.offset % 8 == 0) {
    // Whole 64-bit words, each one atomic: flagged cells stay intact in flight.
    for (std::size_t i = 0; i < n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p.data.data() + i, 8);
      word_at(base, p.offset + i).store(w, std::memory_order_relaxed);
    }
  } else {
    std::memcpy(base + p.offset, p.data.data(), n);
  }
  if (p.has_signal) word_at(base, p.sig_offset).store(p.sig_value, std::memory_order_release);
}

void HostTransport::delivery_loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_work_.wait(lock, [this] { return stop_ || !pending_.empty(); });
    if (pending_.empty()) return;  // stop_ and nothing left
    // Deliver a random pending put: NVSHMEM orders nothing between puts without a fence.
    std::uniform_int_distribution<std::size_t> pick(0, pending_.size() - 1);
    const std::size_t i = pick(rng_);
    PendingPut p = std::move(pending_[i]);
    pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
    ++in_flight_;
    lock.unlock();
    deliver(p);
    lock.lock();
    --in_flight_;
    if (pending_.empty() && in_flight_ == 0) cv_idle_.notify_all();
  }
}

bool HostTransport::wait_signal_geq(int rank, std::size_t sig_offset, uint64_t value,
                                    std::chrono::steady_clock::time_point deadline) {
  auto sig = word_at(heap(rank), sig_offset);
  for (int spins = 0;; ++spins) {
    if (sig.load(std::memory_order_acquire) >= value) return true;
    if (spins % kSpinsBeforeYield == kSpinsBeforeYield - 1) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::yield();
    }
  }
}

void HostTransport::quiet() {
  if (!async_) return;
  std::unique_lock<std::mutex> lock(mu_);
  cv_idle_.wait(lock, [this] { return pending_.empty() && in_flight_ == 0; });
}

}  // namespace nvrar::host
