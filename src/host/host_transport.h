// A host "symmetric heap" shared by ranks that run as threads, with NVSHMEM-like one-sided operations.
//
// Every rank owns a heap of the same size and layout. Two kinds of writes reach a peer's heap:
//  - store_cells: direct 64-bit stores, like a GPU storing through an NVLink peer pointer; each cell becomes
//    visible whole (atomic), in no promised order.
//  - put / put_signal: like nvshmem_putmem(_signal): the source is copied at the call (reusable on return) and
//    lands in the peer's heap later, delivered by a background "network" thread in random order among pending
//    puts. A put_signal's signal word becomes visible only after all of its data.
// Waits spin on atomic loads with a deadline; the caller turns a timeout into an error naming the peer.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace nvrar::host {

class HostTransport {
 public:
  // async_puts = false delivers puts inside the call (still a legal NVSHMEM behaviour), for debugging.
  HostTransport(int nranks, std::size_t heap_bytes, bool async_puts);
  ~HostTransport();
  HostTransport(const HostTransport&) = delete;
  HostTransport& operator=(const HostTransport&) = delete;

  int nranks() const { return nranks_; }
  std::size_t heap_bytes() const { return heap_bytes_; }
  std::byte* heap(int rank) { return heaps_[rank].get(); }

  // Direct (NVLink-like) stores of n cells into rank dst's heap at byte offset (8-byte aligned). Release
  // stores, paired with load_cell's acquire, so that a reader's earlier reads of a region happen before the
  // writer's next use of it in ThreadSanitizer's eyes (on GPUs, kernel boundaries give that order).
  void store_cells(int dst, std::size_t offset, const uint64_t* cells, std::size_t n);
  // Reads one 64-bit word (a cell or a flag) of `rank`'s heap, with acquire.
  uint64_t load_cell(int rank, std::size_t offset);
  // Direct plain stores of bytes into rank dst's heap; readers learn of them through a later flag.
  void store_bytes(int dst, std::size_t offset, const void* src, std::size_t bytes);
  // Release store of a 64-bit flag into rank dst's heap: visible only after this thread's earlier stores.
  void store_flag(int dst, std::size_t offset, uint64_t value);

  // One-sided put of bytes into rank dst's heap. When bytes and offset are multiples of 8, the data lands as
  // whole 64-bit words, so flagged cells can travel by put.
  void put(int dst, std::size_t dst_offset, const void* src, std::size_t bytes);
  // Put followed by a signal: the 64-bit word at sig_offset in dst's heap is set to `value` after the data.
  void put_signal(int dst, std::size_t dst_offset, const void* src, std::size_t bytes, std::size_t sig_offset,
                  uint64_t value);
  // Waits until the signal word at sig_offset in `rank`'s heap is >= value (acquire: the data of the put that
  // set it is visible afterwards). Returns false at the deadline.
  bool wait_signal_geq(int rank, std::size_t sig_offset, uint64_t value, std::chrono::steady_clock::time_point deadline);
  // Blocks until every put issued so far has landed.
  void quiet();

 private:
  struct PendingPut {
    int dst;
    std::size_t offset;
    std::vector<std::byte> data;
    bool has_signal;
    std::size_t sig_offset;
    uint64_t sig_value;
  };
  // Copies the source into p and delivers it now (sync) or hands it to the delivery thread.
  void enqueue(PendingPut p, const void* src);
  void deliver(const PendingPut& p);
  void delivery_loop();

  int nranks_;
  std::size_t heap_bytes_;
  bool async_;
  struct AlignedFree {
    void operator()(std::byte* p) const;
  };
  std::vector<std::unique_ptr<std::byte[], AlignedFree>> heaps_;

  std::mutex mu_;
  std::condition_variable cv_work_;
  std::condition_variable cv_idle_;
  std::deque<PendingPut> pending_;
  std::size_t in_flight_ = 0;  // popped but not yet delivered
  bool stop_ = false;
  std::mt19937 rng_{12345};
  std::thread delivery_;
};

}  // namespace nvrar::host
