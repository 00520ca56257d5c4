// The worker pool (pool.hpp) and codec contexts (context.hpp).
#include "context.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif
#include <utility>

#include "parallel.hpp"

namespace slicer::internal {

// ---- Pool ------------------------------------------------------------------------------------

namespace {

// Polls done() for up to about 50 microseconds; true once it holds. Every 64 polls it yields
// the core, so a thread that shares it (more threads than cores) is not kept waiting.
template <class Done>
bool SpinUntil(Done done) {
  constexpr auto kSpin = std::chrono::microseconds(50);
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    if (std::chrono::steady_clock::now() - start > kSpin) return done();
    std::this_thread::yield();
  }
}

}  // namespace

Pool::Pool(unsigned threads) {
  const unsigned workers = threads > 1 ? threads - 1 : 0;
  workers_.reserve(workers);
  for (unsigned w = 0; w < workers; ++w) {
    try {
      workers_.emplace_back([this] { WorkerLoop(); });
    } catch (...) {
      break;  // the system refused a thread: run with the ones that started
    }
  }
}

Pool::~Pool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true, std::memory_order_release);
  }
  wake_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void Pool::TakeParts() {
  for (unsigned part = next_.fetch_add(1, std::memory_order_relaxed); part < parts_;
       part = next_.fetch_add(1, std::memory_order_relaxed)) {
    call_(arg_, part);
  }
}

bool Pool::TryRun(unsigned parts, void (*call)(void*, unsigned), void* arg) {
  if (busy_.exchange(true, std::memory_order_acquire)) return false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    call_ = call;
    arg_ = arg;
    parts_ = parts;
    next_.store(0, std::memory_order_relaxed);
    pending_.store(static_cast<unsigned>(workers_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();  // no system call when every worker is still spinning
  TakeParts();
  // The workers usually finish within microseconds of the caller: spin first, then sleep.
  if (!SpinUntil([this] { return pending_.load(std::memory_order_acquire) == 0; })) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_.load(std::memory_order_acquire) == 0; });
  }
  busy_.store(false, std::memory_order_release);
  return true;
}

void Pool::WorkerLoop() {
  uint64_t seen = 0;
  for (;;) {
    // A call runs its parallel steps back to back: spin a little for the next one before
    // sleeping (waking a sleeping thread costs tens of microseconds, more on a VM).
    const auto job_or_stop = [&] {
      return stop_.load(std::memory_order_acquire) ||
             generation_.load(std::memory_order_acquire) != seen;
    };
    if (!SpinUntil(job_or_stop)) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, job_or_stop);
    }
    if (stop_.load(std::memory_order_acquire)) return;
    {
      // The job's fields were written under mutex_ before the generation bump.
      std::lock_guard<std::mutex> lock(mutex_);
      seen = generation_.load(std::memory_order_relaxed);
    }
    TakeParts();
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mutex_);  // a caller between its check and its wait
      done_.notify_one();
    }
  }
}

namespace {
thread_local Pool* current_pool = nullptr;
}  // namespace

Pool* CurrentPool() { return current_pool; }

PoolScope::PoolScope(Pool* pool) : previous_(current_pool) { current_pool = pool; }

PoolScope::~PoolScope() { current_pool = previous_; }

// ---- Scratch ---------------------------------------------------------------------------------

namespace {

constexpr size_t kRetainedScratchBytes = size_t{64} << 20;

template <class V>
size_t CapacityBytes(const V& v) {
  return v.capacity() * sizeof(typename V::value_type);
}

}  // namespace

// ---- Context ---------------------------------------------------------------------------------

namespace {

// One thread per CPU the process may run on when the pool starts (a process pinned to fewer
// cores than the machine has, by taskset or a cpuset, would otherwise time-share its cores
// between the pool's threads), at most one per hardware thread.
unsigned SharedPoolThreads() {
  const unsigned hardware = ResolveThreads(0);
#if defined(__linux__)
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0) {
    const int count = CPU_COUNT(&allowed);
    if (count > 0) return std::min(hardware, static_cast<unsigned>(count));
  }
#endif
  return hardware;
}

}  // namespace

std::shared_ptr<Pool> SharedPool() {
  static const std::shared_ptr<Pool> pool = std::make_shared<Pool>(SharedPoolThreads());
  return pool;
}

Pool* SharedPoolInstance() {
  static Pool* const pool = SharedPool().get();
  return pool;
}

Context::Context(unsigned threads)
    : pool_(threads == 0 ? SharedPool() : std::make_shared<Pool>(threads)),
      workspaces_(pool_->threads()) {}

Workspace& Context::workspace(unsigned part) {
  if (part >= workspaces_.size()) throw StatusError(SLICER_ERR_INTERNAL, "part beyond the pool");
  return workspaces_[part];
}

namespace {

// Frees one buffer whose capacity exceeds the retained budget.
template <class V>
void Trim(V* v) {
  if (CapacityBytes(*v) > kRetainedScratchBytes) V().swap(*v);
}

}  // namespace

void Context::TrimScratch(bool keep_output) {
  // Buffer by buffer, each against the budget: a 16M-element call needs about 130 MB of
  // scratch in all (every buffer below the budget) and keeps it for the next such call.
  for (Workspace& w : workspaces_) {
    Trim(&w.keys);
    Trim(&w.order);
    for (int sign = 0; sign < 2; ++sign) {
      Trim(&w.sign_keys[sign]);
      Trim(&w.sign_members[sign]);
    }
    size_t list_bytes = 0;
    for (const auto& list : w.lists) list_bytes += CapacityBytes(list);
    if (list_bytes > kRetainedScratchBytes) decltype(w.lists)().swap(w.lists);
    EncodeScratch& e = w.encode;
    Trim(&e.widened);
    Trim(&e.chunk_count);
    Trim(&e.chunk_length);
    size_t group_bytes = CapacityBytes(e.groups);
    for (const GroupCode& group : e.groups) group_bytes += CapacityBytes(group.kept);
    if (group_bytes > kRetainedScratchBytes) decltype(e.groups)().swap(e.groups);
    size_t payload_bytes = 0;
    for (const ByteBuffer& payload : e.payloads) payload_bytes += CapacityBytes(payload);
    if (payload_bytes > kRetainedScratchBytes) decltype(e.payloads)().swap(e.payloads);
    if (!keep_output) {
      Trim(&e.stream);
      Trim(&w.streams);
    }
  }
}

// ---- Leases for calls without a context ------------------------------------------------------

namespace {

std::mutex free_mutex;
std::vector<std::unique_ptr<Context>>& FreeContexts() {
  static std::vector<std::unique_ptr<Context>>* free_list =
      new std::vector<std::unique_ptr<Context>>();  // never destroyed: used until exit
  return *free_list;
}

}  // namespace

LeasedContext::LeasedContext() {
  {
    std::lock_guard<std::mutex> lock(free_mutex);
    auto& free_list = FreeContexts();
    if (!free_list.empty()) {
      context_ = std::move(free_list.back());
      free_list.pop_back();
    }
  }
  if (!context_) context_ = std::make_unique<Context>(0);
}

LeasedContext::~LeasedContext() {
  // Idle contexts are kept up to one per hardware thread; extras (a burst of concurrent
  // callers) are freed.
  const size_t keep = ResolveThreads(0);
  try {
    std::lock_guard<std::mutex> lock(free_mutex);
    auto& free_list = FreeContexts();
    if (free_list.size() < keep) free_list.push_back(std::move(context_));
  } catch (...) {
    // no memory for the free list: the context is simply freed
  }
}

}  // namespace slicer::internal
