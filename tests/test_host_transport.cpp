// Checks the host transport the CPU executor runs on: direct cell stores, puts that copy their source at the
// call, put_signal's "signal after data" promise under random delivery order, and wait deadlines. Every test
// runs with asynchronous delivery (puts land later, in random order, from another thread) and synchronous
// delivery (puts land inside the call).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/protocol.h"
#include "host/host_transport.h"

namespace nvrar::host {
namespace {

using Clock = std::chrono::steady_clock;
using core::cell_flag;
using core::cell_payload;
using core::make_cell;

// Generous: only reached when something is broken, and then the test fails instead of hanging.
constexpr auto kLongWait = std::chrono::seconds(20);

// Deterministic, position- and round-dependent bytes, so stale or misplaced data never matches.
std::byte pattern_byte(uint64_t round, std::size_t i) {
  uint64_t x = round * 0x9E3779B97F4A7C15ull + i * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 32;
  return static_cast<std::byte>(x);
}

void fill_pattern(std::byte* dst, std::size_t n, uint64_t round) {
  for (std::size_t i = 0; i < n; ++i) dst[i] = pattern_byte(round, i);
}

// Index of the first byte of src[0, n) that differs from the pattern of `round`, or n.
std::size_t first_mismatch(const std::byte* src, std::size_t n, uint64_t round) {
  for (std::size_t i = 0; i < n; ++i)
    if (src[i] != pattern_byte(round, i)) return i;
  return n;
}

class HostTransportTest : public ::testing::TestWithParam<bool> {
 protected:
  bool async() const { return GetParam(); }
};

TEST_P(HostTransportTest, HeapsAreZeroedAlignedAndRoundedUp) {
  HostTransport t(3, 100, async());
  EXPECT_EQ(t.nranks(), 3);
  EXPECT_GE(t.heap_bytes(), 100u);
  EXPECT_EQ(t.heap_bytes() % 64, 0u);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.heap(r)) % 64, 0u) << "rank " << r;
    for (std::size_t i = 0; i < t.heap_bytes(); ++i) ASSERT_EQ(t.heap(r)[i], std::byte{0}) << "rank " << r << " " << i;
    for (int s = r + 1; s < 3; ++s) EXPECT_NE(t.heap(r), t.heap(s));
  }
}

TEST_P(HostTransportTest, StoreCellsThenLoadCellSameThread) {
  HostTransport t(2, 1024, async());
  std::vector<uint64_t> cells(16);
  for (std::size_t i = 0; i < cells.size(); ++i) cells[i] = make_cell(static_cast<uint32_t>(i * 77), 5);
  t.store_cells(1, 256, cells.data(), cells.size());
  for (std::size_t i = 0; i < cells.size(); ++i) EXPECT_EQ(t.load_cell(1, 256 + 8 * i), cells[i]) << i;
  EXPECT_EQ(t.load_cell(1, 248), 0u) << "store_cells wrote before its range";
  EXPECT_EQ(t.load_cell(1, 256 + 8 * cells.size()), 0u) << "store_cells wrote past its range";
  EXPECT_EQ(t.load_cell(0, 256), 0u) << "store_cells wrote into the wrong rank's heap";
}

// Ping-pong of flagged cells between two threads, as the intra-node phases use them: the receiver polls each
// cell until it carries the current round's flag, then checks the payload and acknowledges with a cell of
// its own. The sender double-buffers and reuses a buffer only after the round that used it was acknowledged.
TEST_P(HostTransportTest, StoredCellsArriveWholeBetweenThreads) {
  constexpr int kRounds = 3000;
  constexpr std::size_t kCells = 64;
  constexpr std::size_t kAckOffset = 0;
  constexpr std::size_t kDataOffset = 64;
  HostTransport t(2, kDataOffset + 2 * kCells * 8, async());
  auto payload = [](int round, std::size_t i) { return static_cast<uint32_t>(round * 1000003u + i * 7919u); };

  std::atomic<int> receiver_errors{0};
  std::string first_error;
  std::thread receiver([&] {
    for (int round = 1; round <= kRounds; ++round) {
      const uint32_t flag = core::epoch_flag(round);
      const std::size_t base = kDataOffset + (round % 2) * kCells * 8;
      for (std::size_t i = 0; i < kCells; ++i) {
        const auto deadline = Clock::now() + kLongWait;
        uint64_t cell;
        while (cell_flag(cell = t.load_cell(1, base + 8 * i)) != flag) {
          if (Clock::now() > deadline) {
            if (receiver_errors++ == 0) first_error = "timeout in round " + std::to_string(round);
            return;
          }
        }
        if (cell_payload(cell) != payload(round, i) && receiver_errors++ == 0)
          first_error = "round " + std::to_string(round) + " cell " + std::to_string(i) + " payload " +
                        std::to_string(cell_payload(cell));
      }
      const uint64_t ack = make_cell(static_cast<uint32_t>(round), 1);
      t.store_cells(0, kAckOffset, &ack, 1);
    }
  });

  std::vector<uint64_t> cells(kCells);
  bool sender_timed_out = false;
  for (int round = 1; round <= kRounds && !sender_timed_out; ++round) {
    // Buffer round % 2 was last used by round - 2: wait for its acknowledgement.
    const auto deadline = Clock::now() + kLongWait;
    while (round > 2 && cell_payload(t.load_cell(0, kAckOffset)) < static_cast<uint32_t>(round - 2)) {
      if (Clock::now() > deadline) {
        sender_timed_out = true;
        break;
      }
    }
    for (std::size_t i = 0; i < kCells; ++i) cells[i] = make_cell(payload(round, i), core::epoch_flag(round));
    t.store_cells(1, kDataOffset + (round % 2) * kCells * 8, cells.data(), kCells);
  }
  receiver.join();
  EXPECT_FALSE(sender_timed_out);
  EXPECT_EQ(receiver_errors.load(), 0) << first_error;
}

// Puts of every size from 1 to 70 bytes (not only multiples of 8) at aligned and unaligned offsets, plus a
// large one, all outstanding together; the source is scribbled over as soon as each put returns.
TEST_P(HostTransportTest, PutLandsAfterQuietAndCopiesItsSource) {
  constexpr std::size_t kSlot = 128;
  constexpr std::size_t kLarge = 300'001;
  struct Put {
    std::size_t offset;
    std::size_t bytes;
    uint64_t round;
  };
  std::vector<Put> puts;
  std::size_t offset = 0;
  for (std::size_t bytes = 1; bytes <= 70; ++bytes) {
    for (std::size_t misalign : {0, 3, 8}) {
      puts.push_back({offset + misalign, bytes, puts.size() + 1});
      offset += kSlot;
    }
  }
  puts.push_back({offset + 5, kLarge, 999});
  offset += kLarge + 64;
  HostTransport t(3, offset, async());

  std::vector<std::byte> src(kLarge);
  for (const Put& p : puts) {
    fill_pattern(src.data(), p.bytes, p.round);
    t.put(2, p.offset, src.data(), p.bytes);
    std::fill(src.begin(), src.begin() + static_cast<std::ptrdiff_t>(p.bytes), std::byte{0xAA});
  }
  t.quiet();
  // Everything landed where it should, with the bytes as they were at the call ...
  for (const Put& p : puts) {
    const std::size_t bad = first_mismatch(t.heap(2) + p.offset, p.bytes, p.round);
    EXPECT_EQ(bad, p.bytes) << "put of " << p.bytes << " bytes at offset " << p.offset << ": byte " << bad;
  }
  // ... and nothing else changed: not outside the ranges, not on other ranks.
  std::vector<bool> covered(t.heap_bytes(), false);
  for (const Put& p : puts) std::fill_n(covered.begin() + static_cast<std::ptrdiff_t>(p.offset), p.bytes, true);
  std::size_t stray = 0;
  for (std::size_t i = 0; i < t.heap_bytes(); ++i) {
    if (!covered[i] && t.heap(2)[i] != std::byte{0}) ++stray;
    if (t.heap(0)[i] != std::byte{0} || t.heap(1)[i] != std::byte{0}) ++stray;
  }
  EXPECT_EQ(stray, 0u);
}

TEST_P(HostTransportTest, PutCarriesFlaggedCellsWhole) {
  // Cells sent by put (8-byte multiples at 8-byte offsets) are readable with load_cell after quiet.
  HostTransport t(2, 4096, async());
  std::vector<uint64_t> cells(100);
  for (std::size_t i = 0; i < cells.size(); ++i) cells[i] = make_cell(static_cast<uint32_t>(i * i), 42);
  t.put(0, 512, cells.data(), cells.size() * 8);
  std::fill(cells.begin(), cells.end(), 0);
  t.quiet();
  for (std::size_t i = 0; i < cells.size(); ++i)
    EXPECT_EQ(t.load_cell(0, 512 + 8 * i), make_cell(static_cast<uint32_t>(i * i), 42)) << i;
}

// The put_signal promise: once the signal is seen (acquire), all of that put's data is visible. The sender
// alternates two data buffers, each with its own signal word, so two put_signals are in flight at once and
// the asynchronous transport may deliver them in either order; a buffer is reused only after the receiver
// acknowledged the round that used it. The receiver checks every byte of every round, so a signal that
// overtook its data (or a torn delivery) fails the test.
//
// Signal words are only ever set, and pending puts land in random order, so one word must never have two
// put_signals outstanding (a later value could be overwritten by an earlier one): that is why signals and
// acknowledgements both alternate between two words, each reused only once its previous value was seen.
TEST_P(HostTransportTest, PutSignalDataIsVisibleOnceSignalIsSeen) {
  constexpr int kRounds = 4000;
  constexpr std::size_t kMaxBytes = 64 * 1024 + 40;
  constexpr std::size_t kAckOffset = 0;       // two signal words, one per buffer, written by the receiver
  constexpr std::size_t kAckDataOffset = 32;  // where the acknowledgements' (unused) data lands
  constexpr std::size_t kSignalOffset = 64;   // two signal words, one per buffer, written by the sender
  constexpr std::size_t kDataOffset = 128;
  // Sizes alternate between whole words (delivered word by word) and odd sizes (delivered by memcpy).
  auto round_bytes = [](int round) -> std::size_t {
    static constexpr std::size_t kSizes[] = {64 * 1024, 64 * 1024 + 37, 8, 1, 4096 + 3, 24 * 1024};
    return kSizes[round % 6];
  };
  HostTransport t(2, kDataOffset + 2 * kMaxBytes, async());

  std::atomic<int> receiver_errors{0};
  std::string first_error;
  std::thread receiver([&] {
    for (int round = 1; round <= kRounds; ++round) {
      const int buf = round % 2;
      if (!t.wait_signal_geq(1, kSignalOffset + 8 * buf, static_cast<uint64_t>(round), Clock::now() + kLongWait)) {
        if (receiver_errors++ == 0) first_error = "signal of round " + std::to_string(round) + " never came";
        return;
      }
      const std::size_t n = round_bytes(round);
      const std::size_t bad = first_mismatch(t.heap(1) + kDataOffset + buf * kMaxBytes, n, round);
      if (bad != n && receiver_errors++ == 0)
        first_error = "round " + std::to_string(round) + ": byte " + std::to_string(bad) + " of " + std::to_string(n) +
                      " not yet (or wrongly) delivered when the signal was seen";
      // Acknowledge by put_signal: its release orders the reads above before the sender's reuse of the buffer.
      const uint64_t ack = static_cast<uint64_t>(round);
      t.put_signal(0, kAckDataOffset + 8 * buf, &ack, 8, kAckOffset + 8 * buf, ack);
    }
  });

  std::vector<std::byte> src(kMaxBytes);
  bool sender_timed_out = false;
  for (int round = 1; round <= kRounds; ++round) {
    const int buf = round % 2;
    if (round > 2 &&
        !t.wait_signal_geq(0, kAckOffset + 8 * buf, static_cast<uint64_t>(round - 2), Clock::now() + kLongWait)) {
      sender_timed_out = true;
      break;
    }
    const std::size_t n = round_bytes(round);
    fill_pattern(src.data(), n, round);
    t.put_signal(1, kDataOffset + buf * kMaxBytes, src.data(), n, kSignalOffset + 8 * buf,
                 static_cast<uint64_t>(round));
    // The source is the sender's to reuse right away.
    std::fill_n(src.begin(), n, std::byte{0x5A});
  }
  receiver.join();
  t.quiet();
  EXPECT_FALSE(sender_timed_out);
  EXPECT_EQ(receiver_errors.load(), 0) << first_error;
  EXPECT_EQ(t.load_cell(0, kAckOffset + 8 * (kRounds % 2)), static_cast<uint64_t>(kRounds));
  EXPECT_EQ(t.load_cell(0, kAckOffset + 8 * ((kRounds - 1) % 2)), static_cast<uint64_t>(kRounds - 1));
}

TEST_P(HostTransportTest, WaitSignalTimesOutWhenNothingComes) {
  HostTransport t(2, 256, async());
  constexpr auto kDeadline = std::chrono::milliseconds(50);
  const auto start = Clock::now();
  EXPECT_FALSE(t.wait_signal_geq(1, 8, 1, start + kDeadline));
  const auto waited = Clock::now() - start;
  EXPECT_GE(waited, kDeadline);
  EXPECT_LT(waited, std::chrono::seconds(5)) << "the deadline was not honoured promptly";

  // A signal below the awaited value does not end the wait either.
  const std::byte b{1};
  t.put_signal(1, 0, &b, 1, 8, 4);
  t.quiet();
  EXPECT_FALSE(t.wait_signal_geq(1, 8, 5, Clock::now() + kDeadline));
  // At or above it, the wait succeeds at once, even with a deadline already past.
  EXPECT_TRUE(t.wait_signal_geq(1, 8, 4, Clock::now() - std::chrono::seconds(1)));
  EXPECT_TRUE(t.wait_signal_geq(1, 8, 3, Clock::now() - std::chrono::seconds(1)));
  EXPECT_TRUE(t.wait_signal_geq(1, 8, 0, Clock::now() - std::chrono::seconds(1)));
  EXPECT_EQ(t.heap(1)[0], b);
}

TEST_P(HostTransportTest, WaitSignalWakesForALateSignal) {
  HostTransport t(2, 256, async());
  std::thread late([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const uint64_t word = 0x0123456789ABCDEFull;
    t.put_signal(0, 64, &word, 8, 0, 7);
  });
  EXPECT_TRUE(t.wait_signal_geq(0, 0, 7, Clock::now() + kLongWait));
  EXPECT_EQ(t.load_cell(0, 64), 0x0123456789ABCDEFull);
  late.join();
}

TEST_P(HostTransportTest, QuietWithNothingPendingAndDestructionWithPutsInFlight) {
  {
    HostTransport t(2, 1 << 16, async());
    t.quiet();
    std::vector<std::byte> src(1000, std::byte{7});
    for (int i = 0; i < 50; ++i) t.put(1, static_cast<std::size_t>(i) * 1000, src.data(), src.size());
    // Destroyed with puts possibly still pending: must neither hang nor touch freed memory.
  }
  SUCCEED();
}

INSTANTIATE_TEST_SUITE_P(Delivery, HostTransportTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& info) { return info.param ? "Async" : "Sync"; });

}  // namespace
}  // namespace nvrar::host
