// A persistent worker pool: threads started once and reused by every call, so a call never
// pays for starting threads nor faults in fresh thread stacks.
//
// One job runs at a time. TryRun never waits for another caller's job: when the pool is busy
// it returns false and the caller runs its parts itself, so any number of concurrent calls
// share the pool's threads without starting more (the threads of a process stay bounded by
// the pools it created plus its own calling threads).
#ifndef SLICER_SRC_POOL_HPP_
#define SLICER_SRC_POOL_HPP_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace slicer::internal {

class Pool {
 public:
  // `threads` >= 1 counts the caller: threads - 1 workers are started (fewer if the system
  // refuses to start more; threads() says how many are available).
  explicit Pool(unsigned threads);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Workers + the calling thread.
  unsigned threads() const { return static_cast<unsigned>(workers_.size()) + 1; }

  // Runs call(arg, part) once for every part in [0, parts), on the caller and the workers,
  // and returns once all have returned. `call` must not throw. Returns false, having run
  // nothing, when the pool is busy with another caller's job.
  bool TryRun(unsigned parts, void (*call)(void*, unsigned), void* arg);

 private:
  void WorkerLoop();
  void TakeParts();

  std::vector<std::thread> workers_;
  std::atomic<bool> busy_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  // Bumped for every job (under mutex_); read without it by workers spinning for the next job.
  std::atomic<uint64_t> generation_{0};
  // Workers still in the current job: decremented without mutex_ (the last one then notifies
  // under it), so a caller may spin on it before sleeping.
  std::atomic<unsigned> pending_{0};
  std::atomic<bool> stop_{false};
  // The current job: written by the caller before the generation bump, read by workers after
  // they saw it (under mutex_), so no worker reads a half-written job.
  void (*call_)(void*, unsigned) = nullptr;
  void* arg_ = nullptr;
  unsigned parts_ = 0;
  std::atomic<unsigned> next_{0};
};

// The pool that RunParts (parallel.hpp) uses on this thread, set for the span of one call
// by a PoolScope; none outside a call.
Pool* CurrentPool();

// The process's shared pool (one thread per hardware thread), started on first use.
Pool* SharedPoolInstance();

class PoolScope {
 public:
  explicit PoolScope(Pool* pool);
  ~PoolScope();
  PoolScope(const PoolScope&) = delete;
  PoolScope& operator=(const PoolScope&) = delete;

 private:
  Pool* previous_;
};

}  // namespace slicer::internal

#endif  // SLICER_SRC_POOL_HPP_
