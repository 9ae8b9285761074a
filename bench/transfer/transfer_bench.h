// Machinery shared by `ferry bench transfer` and `ferry demo`: a target process that
// registers a working set and waits, and an initiator that moves blocks to or from it
// through the public TransferEngine API, timing every request.
//
//   FERRY_ASSIGN_OR_RETURN(auto target, TargetProcess::Start(1ull << 30, "auto"));
//   FERRY_ASSIGN_OR_RETURN(auto init, BenchInitiator::Create("shm", "", target->segment(),
//                                                            1ull << 30));
//   BenchConfig c;  c.op = TransferOp::kWrite;  c.block_size = 4 << 20;
//   FERRY_ASSIGN_OR_RETURN(BenchResult r, init->Run(c));
//   fmt::print("{}\n{}\n", r.HumanLine(), r.JsonLine());
//
// Working-set buffers (initiator local and target remote) hold the same position-keyed
// pattern (see FillPattern), so the bytes at remote offset x equal the bytes the
// initiator holds at local offset x; blocks move between equal offsets.
// Thread safety: a BenchInitiator runs one Run at a time; TargetProcess is not shared.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/deadline.h"
#include "ferry/transfer_engine.h"

namespace ferry::bench {

// The printed line with which a target announces itself: "FERRY_TARGET_READY <segment>".
inline constexpr char kTargetReady[] = "FERRY_TARGET_READY";

// Fills [p, p+n) with the pattern for working-set offsets [offset, offset+n): 8-byte word
// k of the working set is a hash of k. Fast (about a byte per cycle).
void FillPattern(char* p, size_t n, uint64_t offset);
// Whether [p, p+n) holds the pattern for offsets [offset, offset+n).
bool CheckPattern(const char* p, size_t n, uint64_t offset);

struct BenchConfig {
  TransferOp op = TransferOp::kWrite;
  uint64_t block_size = 4u << 20;  // bytes per request
  int batch_size = 1;              // requests per TransferSync call
  int threads = 1;                 // initiator threads, each with its own batches
  double duration_s = 2;           // stop after this long...
  uint64_t total_bytes = 0;        // ...or after this many bytes (0: duration only)
};

struct BenchResult {
  std::string transport;  // as requested ("auto", "tcp", "shm", "fault:tcp")
  BenchConfig config;
  uint64_t working_set = 0;
  uint64_t bytes = 0;
  uint64_t requests = 0;
  double seconds = 0;
  // Per request, from submit until its batch completed, in microseconds.
  double lat_p50_us = 0, lat_p90_us = 0, lat_p99_us = 0, lat_max_us = 0;
  bool verified = false;  // integrity check passed (see BenchInitiator::Verify)

  double gbps() const { return seconds > 0 ? static_cast<double>(bytes) / seconds / 1e9 : 0; }
  std::string HumanLine() const;
  std::string JsonLine() const;  // one JSON object, no newline
};

// Where the target's working set comes from: the target's own memory, registered
// (RegisterMemory; shm reaches it with cross-memory attach), or memory the engine allocates
// (AllocateManagedBuffer; shm peers map it and copy with memcpy).
enum class TargetMemory { kRegistered, kManaged };

// "registered" / "managed" (anything else: InvalidArgument).
Result<TargetMemory> ParseTargetMemory(const std::string& text);

// This binary running `bench transfer --role target` as a child process. Owns the child:
// the destructor closes its stdin (the child exits on EOF), waits up to 5 s, then kills it.
class TargetProcess {
 public:
  // Starts the child and waits (up to `timeout`) for its ready line.
  // Errors: Internal (fork/exec/pipe), DeadlineExceeded, Unavailable (child died).
  static Result<std::unique_ptr<TargetProcess>> Start(
      uint64_t working_set, const std::string& transport,
      TargetMemory memory = TargetMemory::kRegistered,
      std::chrono::milliseconds timeout = std::chrono::seconds(60));
  ~TargetProcess();
  const std::string& segment() const { return segment_; }
  pid_t pid() const { return pid_; }

 private:
  TargetProcess(pid_t pid, int stdin_fd, std::string segment)
      : pid_(pid), stdin_fd_(stdin_fd), segment_(std::move(segment)) {}
  pid_t pid_;
  int stdin_fd_;
  std::string segment_;
};

// The target role's main: registers a `working_set`-byte buffer holding the pattern (of
// `memory`), prints the ready line, serves until stdin closes or `lifetime` passes.
// Returns an exit code.
int RunTargetRole(uint64_t working_set, const std::string& transport, std::chrono::seconds lifetime,
                  TargetMemory memory = TargetMemory::kRegistered);

class BenchInitiator {
 public:
  // Creates an engine using `transport` (with "k=v,..." params), registers a local
  // working set holding the pattern and opens `target`. Errors: as TransferEngine.
  static Result<std::unique_ptr<BenchInitiator>> Create(const std::string& transport,
                                                        const std::string& params,
                                                        const std::string& target,
                                                        uint64_t working_set);
  // Runs the timed loop, then Verify(). Errors: the first failed transfer, or DataLoss
  // if the integrity check fails.
  Result<BenchResult> Run(const BenchConfig& config);
  // Integrity: reads blocks from the target and compares them with the pattern; and
  // writes a block of fresh random bytes, reads it back, compares, restores the pattern.
  // Errors: DataLoss naming the block, or the transfer's error.
  Status Verify(uint64_t block_size);

  TransferEngine& engine() { return *engine_; }
  char* local() { return local_.get(); }
  uint64_t remote_base() const { return remote_base_; }
  uint64_t working_set() const { return working_set_; }
  SegmentId segment() const { return segment_; }

 private:
  BenchInitiator() = default;
  std::string transport_;
  std::unique_ptr<TransferEngine> engine_;
  std::unique_ptr<char[]> local_;  // (working_set_) bytes holding the pattern
  uint64_t working_set_ = 0;
  uint64_t remote_base_ = 0;  // address of the target's working set
  SegmentId segment_ = 0;
};

}  // namespace ferry::bench
