// Codec contexts: a worker pool plus the scratch one call needs, reused call after call so that
// repeated calls of similar size allocate nothing and fault in no fresh pages.
//
// A context serves one call at a time (a mutex serializes calls on the same context). Its
// parallel parts run on its pool: its own (slicer_context_create(t), t > 0) or the process's
// shared pool (t = 0: one per hardware thread, started on first use). Scratch is owned by the
// context and handed down explicitly: part p of a call uses workspace(p).
//
// Another coding mode (e.g. the dense mode of format 2) plugs in the same way: its entry point
// takes a Context, locks call_mutex(), opens a PoolScope on pool(), splits its work with
// RunParts (parallel.hpp: parts run on that pool, or in sequence when it is busy) and keeps
// its reusable buffers as members of Workspace / EncodeScratch, trimmed by TrimScratch.
#ifndef SLICER_SRC_CONTEXT_HPP_
#define SLICER_SRC_CONTEXT_HPP_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "codec.hpp"
#include "pool.hpp"

namespace slicer::internal {

using KeyBuffer = std::vector<uint32_t, UninitializedAllocator<uint32_t>>;
using IndexBuffer = std::vector<uint64_t, UninitializedAllocator<uint64_t>>;

// Scratch of a whole encode: the group codes (their kept lists keep their capacity), the
// widened input, the chunk tables and payloads, the finished stream.
struct EncodeScratch {
  std::vector<float> widened;
  std::vector<GroupCode> groups;
  std::vector<uint64_t> chunk_count;
  std::vector<uint64_t> chunk_length;
  std::vector<ByteBuffer> payloads;
  std::vector<uint8_t> stream;

};

// Scratch of one thread of a call: the group-level work of ATKF, MS and ABQ, and (for the
// thread that assembles a stream) the encode scratch.
struct Workspace {
  KeyBuffer keys;                                // rank selection: a copy of keys
  KeyBuffer sign_keys[2];                        // magnitude splitting: keys per sign
  IndexBuffer sign_members[2];                   // ... and their kept-list indices
  IndexBuffer order;                             // ABQ: kept elements grouped by label
  std::vector<KeptList> lists;   // per-part kept lists of a split sweep
  EncodeScratch encode;
  ByteBuffer streams;                            // encode_batch: this part's streams

};

class Context {
 public:
  // threads > 0: a pool of its own with that many threads (the caller counts as one);
  // threads == 0: the process's shared pool.
  explicit Context(unsigned threads);

  unsigned threads() const { return pool_->threads(); }
  Pool* pool() const { return pool_.get(); }
  std::mutex& call_mutex() { return call_mutex_; }

  // The scratch of part `part` (< threads()); part 0 is the calling thread's.
  Workspace& workspace(unsigned part);

  // Frees every scratch buffer above the retained budget (64 MiB each), so that one huge call
  // does not pin its memory for the life of the context. With keep_output the finished
  // streams stay (a caller may still read them until the context's next call).
  void TrimScratch(bool keep_output);

 private:
  std::shared_ptr<Pool> pool_;
  std::mutex call_mutex_;
  std::vector<Workspace> workspaces_;
};

// The process's shared pool (one thread per hardware thread), started on first use.
std::shared_ptr<Pool> SharedPool();

// A context for one call of a function that was given none (the plain C ABI): taken from a
// free list of contexts on the shared pool and returned to it afterwards, so concurrent
// callers each get their own scratch and no call starts threads.
class LeasedContext {
 public:
  LeasedContext();
  ~LeasedContext();
  LeasedContext(const LeasedContext&) = delete;
  LeasedContext& operator=(const LeasedContext&) = delete;
  Context& get() { return *context_; }

 private:
  std::unique_ptr<Context> context_;
};

// Threads a call on `context` uses: `requested` (0 = all of the context's), at most the
// context's.
inline unsigned CallThreads(const Context& context, unsigned requested) {
  const unsigned available = context.threads();
  return requested == 0 || requested > available ? available : requested;
}

}  // namespace slicer::internal

#endif  // SLICER_SRC_CONTEXT_HPP_
