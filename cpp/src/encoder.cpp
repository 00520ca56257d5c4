#include "encoder.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define SLICER_WIDEN_F16C 1
#endif

#include "context.hpp"
#include "crc32.hpp"
#include "float_bits.hpp"
#include "format/stream_format.hpp"
#include "header.hpp"
#include "parallel.hpp"

namespace slicer::internal {

#if defined(SLICER_WIDEN_F16C)
namespace {

// CPUID leaf 1: F16C (ECX bit 29), AVX (bit 28) and OSXSAVE (bit 27), and the OS must save the
// SSE and AVX register state (XCR0 bits 1 and 2). Read directly: not every compiler that builds
// this file knows "f16c" as a __builtin_cpu_supports feature name.
bool DetectF16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  const unsigned need = (1u << 29) | (1u << 28) | (1u << 27);
  if ((ecx & need) != need) return false;
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  return (xcr0_lo & 0x6u) == 0x6u;
}

bool HasF16c() {
  static const bool has = DetectF16c();
  return has;
}

// Eight at a time with the CPU's conversion (VCVTPH2PS, exact). A run of eight holding a
// subnormal, infinity or NaN goes through the scalar form, so the bits never depend on MXCSR
// or on how the instruction quiets a signaling NaN. Returns the first element not converted.
__attribute__((target("f16c,avx"))) uint64_t WidenHalfF16c(const uint8_t* bytes, uint64_t begin,
                                                           uint64_t end, float* x) {
  const __m128i exponent_mask = _mm_set1_epi16(0x7C00);
  const __m128i magnitude_mask = _mm_set1_epi16(0x7FFF);
  const __m128i zero = _mm_setzero_si128();
  uint64_t j = begin;
  for (; j + 8 <= end; j += 8) {
    const __m128i half = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + 2 * j));
    const __m128i exponent = _mm_and_si128(half, exponent_mask);
    const __m128i is_zero = _mm_cmpeq_epi16(_mm_and_si128(half, magnitude_mask), zero);
    const int special =
        _mm_movemask_epi8(_mm_or_si128(_mm_andnot_si128(is_zero, _mm_cmpeq_epi16(exponent, zero)),
                                       _mm_cmpeq_epi16(exponent, exponent_mask)));
    if (special != 0) {
      for (uint64_t i = j; i < j + 8; ++i) {
        uint16_t value;
        std::memcpy(&value, bytes + 2 * i, 2);
        x[i] = HalfToFloat(value);
      }
      continue;
    }
    _mm256_storeu_ps(x + j, _mm256_cvtph_ps(half));
  }
  return j;
}

}  // namespace
#endif

// float16 -> binary32 of x[begin, end), exact. F16C where the CPU has it, else SSE2: eight at a
// time with integer operations (sign | (exponent + 112, mantissa) << 13; zero keeps only its sign);
// a run of eight holding a subnormal, infinity or NaN goes through the scalar conversion.
void WidenHalf(const uint8_t* bytes, uint64_t begin, uint64_t end, float* x) {
  uint64_t j = begin;
#if defined(SLICER_WIDEN_F16C)
  if (HasF16c()) j = WidenHalfF16c(bytes, begin, end, x);
#endif
#if defined(__SSE2__)
  const __m128i magnitude_mask = _mm_set1_epi32(0x7FFF);
  const __m128i exponent_mask = _mm_set1_epi32(0x7C00);
  const __m128i bias = _mm_set1_epi32(112 << 23);
  const __m128i zero = _mm_setzero_si128();
  for (; j + 8 <= end; j += 8) {
    const __m128i half = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + 2 * j));
    const __m128i lanes[2] = {_mm_unpacklo_epi16(half, zero), _mm_unpackhi_epi16(half, zero)};
    __m128i out[2];
    int special = 0;
    for (int h = 0; h < 2; ++h) {
      const __m128i magnitude = _mm_and_si128(lanes[h], magnitude_mask);
      const __m128i exponent = _mm_and_si128(lanes[h], exponent_mask);
      const __m128i is_zero = _mm_cmpeq_epi32(magnitude, zero);
      // exponent 0 with a mantissa (subnormal) or exponent 31 (infinity, NaN)
      special |=
          _mm_movemask_epi8(_mm_or_si128(_mm_andnot_si128(is_zero, _mm_cmpeq_epi32(exponent, zero)),
                                         _mm_cmpeq_epi32(exponent, exponent_mask)));
      const __m128i sign = _mm_slli_epi32(_mm_xor_si128(lanes[h], magnitude), 16);
      const __m128i normal = _mm_add_epi32(_mm_slli_epi32(magnitude, 13), bias);
      out[h] = _mm_or_si128(sign, _mm_andnot_si128(is_zero, normal));
    }
    if (special != 0) {
      for (uint64_t i = j; i < j + 8; ++i) {
        uint16_t value;
        std::memcpy(&value, bytes + 2 * i, 2);
        x[i] = HalfToFloat(value);
      }
      continue;
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(x + j), out[0]);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(x + j + 4), out[1]);
  }
#endif
  for (; j < end; ++j) {
    uint16_t value;
    std::memcpy(&value, bytes + 2 * j, 2);
    x[j] = HalfToFloat(value);
  }
}

// bfloat16 -> binary32 of x[begin, end): the bits shifted up by 16 (SSE2: eight at a time).
void WidenBFloat16(const uint8_t* bytes, uint64_t begin, uint64_t end, float* x) {
  uint64_t j = begin;
#if defined(__SSE2__)
  const __m128i zero = _mm_setzero_si128();
  for (; j + 8 <= end; j += 8) {
    const __m128i half = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + 2 * j));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(x + j), _mm_unpacklo_epi16(zero, half));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(x + j + 4), _mm_unpackhi_epi16(zero, half));
  }
#endif
  for (; j < end; ++j) {
    uint16_t value;
    std::memcpy(&value, bytes + 2 * j, 2);
    x[j] = BFloat16ToFloat(value);
  }
}

namespace {

std::atomic<bool> baseline_simd_for_testing{false};

}  // namespace

void SetBaselineSimdForTesting(bool baseline) { baseline_simd_for_testing.store(baseline); }

bool BaselineSimdForTesting() { return baseline_simd_for_testing.load(std::memory_order_relaxed); }

namespace {

constexpr uint64_t kMinElementsPerThread = uint64_t{1} << 16;

// The input as binary32: float32 input is used in place when aligned; float16 / bfloat16
// widen exactly. NaN/inf are caught later, by the selection's first pass over each group.
const float* Widen(const void* data, int dtype, uint64_t n, unsigned threads,
                   std::vector<float>* widened) {
  if (dtype == SLICER_FLOAT32 && reinterpret_cast<uintptr_t>(data) % alignof(float) == 0) {
    return static_cast<const float*>(data);
  }
  widened->resize(n);
  const unsigned parts = PartCount(n, threads, kMinElementsPerThread);
  const uint8_t* bytes = static_cast<const uint8_t*>(data);
  RunParts(n, parts, [&](unsigned, uint64_t begin, uint64_t end) {
    float* x = widened->data();
    if (dtype == SLICER_FLOAT32) {
      std::memcpy(x + begin, bytes + 4 * begin, 4 * (end - begin));
    } else if (dtype == SLICER_FLOAT16) {
      WidenHalf(bytes, begin, end, x);
    } else {
      WidenBFloat16(bytes, begin, end, x);
    }
  });
  return widened->data();
}

void CodeGroups(const float* x, const Geometry& geometry, const CodecParams& params,
                SelectionPath path, Context* context, unsigned caller_part,
                std::vector<GroupCode>* groups) {
  groups->resize(geometry.group_count);
  const uint64_t n = geometry.group_size;
  auto code_one = [&](uint64_t g, unsigned threads, Workspace* workspace) {
    GroupCode& group = (*groups)[g];
    group.ranges_known = false;  // set by a selection that finds the block ranges
    group.finished = false;      // set by a selection that finishes a small group itself
    const uint64_t base = g * n;
    if (path == SelectionPath::kSort) {
      SelectGroupBySort(x + base, n, base, params, &group);
    } else {
      SelectGroup(x + base, n, base, params, threads, workspace, &group);
    }
    FinishBlocks(params, threads, workspace, &group);
  };
  if (geometry.group_count >= params.threads || n < kMinElementsPerThread) {
    // Many groups (rows mode): one thread per range of whole groups.
    const unsigned parts = PartCount(geometry.num_elements, params.threads, kMinElementsPerThread);
    const unsigned group_parts = std::min<uint64_t>(parts, geometry.group_count);
    RunParts(geometry.group_count, group_parts, [&](unsigned part, uint64_t begin, uint64_t end) {
      // One part: the caller's workspace (a batch part); several: one per pool part.
      Workspace* workspace = &context->workspace(group_parts > 1 ? part : caller_part);
      for (uint64_t g = begin; g < end; ++g) code_one(g, 1, workspace);
    });
  } else {
    Workspace* workspace = &context->workspace(caller_part);
    for (uint64_t g = 0; g < geometry.group_count; ++g) code_one(g, params.threads, workspace);
  }
}

// EncodeStream on validated geometry, with workspace `caller_part` of the context; the stream
// is left in that workspace's encode.stream.
void EncodeStreamWith(const void* data, int dtype, const int64_t* shape, uint32_t ndim,
                      const Geometry& geometry, const CodecParams& params, SelectionPath path,
                      Context* context, unsigned caller_part) {
  EncodeScratch* scratch = &context->workspace(caller_part).encode;
  std::vector<uint8_t>* out = &scratch->stream;
  std::vector<GroupCode>& groups = scratch->groups;
  // One large float16 / bfloat16 group: selected straight from the 16-bit input (the widened
  // copy would cost a pass that writes twice the input); anything else is widened first.
  bool coded = false;
  if (dtype != SLICER_FLOAT32 && path == SelectionPath::kRadix && geometry.group_count == 1) {
    groups.resize(1);
    groups[0].ranges_known = false;
    groups[0].finished = false;
    Workspace* workspace = &context->workspace(caller_part);
    if (SelectGroup16(static_cast<const uint8_t*>(data), dtype, geometry.group_size, 0, params,
                      params.threads, workspace, &groups[0])) {
      FinishBlocks(params, params.threads, workspace, &groups[0]);
      coded = true;
    }
  }
  if (!coded) {
    const float* x = Widen(data, dtype, geometry.num_elements, params.threads, &scratch->widened);
    CodeGroups(x, geometry, params, path, context, caller_part, &groups);
  }

  // Pack every chunk; each thread fills its own buffer with a contiguous run of chunks, so the
  // buffers concatenate to the payload in stream order whatever the thread count.
  const uint64_t chunks_per_group = geometry.chunks_per_group;
  const uint64_t total_chunks = geometry.group_count * chunks_per_group;
  std::vector<uint64_t>& chunk_count = scratch->chunk_count;
  std::vector<uint64_t>& chunk_length = scratch->chunk_length;
  chunk_count.resize(total_chunks);  // every entry is written below
  chunk_length.resize(total_chunks);
  const unsigned parts =
      std::min<uint64_t>(PartCount(geometry.num_elements, params.threads, kMinElementsPerThread),
                         std::max<uint64_t>(1, total_chunks));
  std::vector<ByteBuffer>& payloads = scratch->payloads;
  payloads.resize(parts);
  uint32_t payload_crc_storage[8];
  std::vector<uint32_t> payload_crc_heap(parts > 8 ? parts : 0);
  uint32_t* payload_crc = parts > 8 ? payload_crc_heap.data() : payload_crc_storage;
  for (ByteBuffer& payload : payloads) payload.clear();
  const unsigned chunk_log2 = params.chunk_log2;
  RunParts(total_chunks, parts, [&](unsigned part, uint64_t begin, uint64_t end) {
    ByteBuffer& payload = payloads[part];
    for (uint64_t c = begin; c < end; ++c) {
      const GroupCode& group = groups[c / chunks_per_group];
      const uint64_t chunk_start = (c % chunks_per_group) << chunk_log2;
      const uint64_t chunk_end = chunk_start + (uint64_t{1} << chunk_log2);
      const auto by_position = [](const KeptElement& e, uint64_t p) { return e.position < p; };
      const auto first =
          std::lower_bound(group.kept.begin(), group.kept.end(), chunk_start, by_position);
      const auto last = std::lower_bound(first, group.kept.end(), chunk_end, by_position);
      const size_t before = payload.size();
      const uint64_t count = static_cast<uint64_t>(last - first);
      EncodeChunk(group.kept.data() + (first - group.kept.begin()), count, chunk_start, group,
                  params.labels(), chunk_log2, &payload);
      chunk_count[c] = count;
      chunk_length[c] = payload.size() - before;
    }
    // Checksummed while the part is still in cache; combined in stream order below.
    if (parts > 1) payload_crc[part] = Crc32(0, payload.data(), payload.size());
  });

  // Header and group tables through the format layer that the decoders parse them with.
  out->clear();
  WriteHeader(dtype, shape, ndim, params, geometry.group_count, out);
  const unsigned labels = params.labels();
  uint64_t counts[2 * SLICER_MAX_BLOCKS];
  uint32_t widths[2 * SLICER_MAX_BLOCKS];
  float lo[2 * SLICER_MAX_BLOCKS];
  float hi[2 * SLICER_MAX_BLOCKS];
  for (uint64_t g = 0; g < geometry.group_count; ++g) {
    const GroupCode& group = groups[g];
    for (unsigned l = 0; l < labels; ++l) {
      const Block& block = group.blocks[l];
      counts[l] = block.count;
      widths[l] = block.width;
      lo[l] = block.lo;
      hi[l] = block.hi;
    }
    format::AppendGroupTables(group.k, group.n_pos, params.blocks_pos, labels, counts, widths, lo,
                              hi, chunks_per_group, chunk_count.data() + g * chunks_per_group,
                              chunk_length.data() + g * chunks_per_group, out);
  }
  if (parts == 1) {
    // One part (small tensors, per-item batches): appended and checksummed in one go.
    out->reserve(out->size() + payloads[0].size() + 4);
    out->insert(out->end(), payloads[0].begin(), payloads[0].end());
    const uint32_t crc = Crc32(0, out->data(), out->size());
    uint8_t crc_bytes[4];
    std::memcpy(crc_bytes, &crc, 4);
    out->insert(out->end(), crc_bytes, crc_bytes + 4);
    return;
  }
  // Several parts go to their final offsets in parallel (each part copied by one thread); the
  // CRC of the stream is that of the header and tables combined with the parts' CRCs (zlib's
  // crc32_combine: the same checksum as one pass over the stream).
  const size_t tables_end = out->size();
  uint32_t crc = Crc32(0, out->data(), tables_end);
  size_t payload_offsets_storage[9];
  std::vector<size_t> payload_offsets_heap(parts > 8 ? parts + 1 : 0);
  size_t* payload_offsets = parts > 8 ? payload_offsets_heap.data() : payload_offsets_storage;
  payload_offsets[0] = tables_end;
  for (unsigned part = 0; part < parts; ++part) {
    payload_offsets[part + 1] = payload_offsets[part] + payloads[part].size();
    crc = Crc32Combine(crc, payload_crc[part], payloads[part].size());
  }
  out->resize(payload_offsets[parts] + 4);
  uint8_t* stream = out->data();
  RunParts(parts, parts, [&](unsigned, uint64_t begin, uint64_t end) {
    for (uint64_t part = begin; part < end; ++part) {
      if (!payloads[part].empty()) {
        std::memcpy(stream + payload_offsets[part], payloads[part].data(), payloads[part].size());
      }
    }
  });
  std::memcpy(stream + payload_offsets[parts], &crc, 4);
}

Geometry CheckedGeometry(const void* data, int dtype, const int64_t* shape, uint32_t ndim,
                         const CodecParams& params) {
  if (!IsSupportedDtype(dtype)) throw StatusError(SLICER_ERR_UNSUPPORTED_DTYPE, "bad dtype");
  Geometry geometry;
  const slicer_status shape_status =
      ComputeGeometry(shape, ndim, params.group_rows, params.chunk_log2, &geometry);
  if (shape_status != SLICER_OK) throw StatusError(shape_status, "bad shape");
  if (geometry.num_elements > 0 && data == nullptr) {
    throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "data is NULL");
  }
  return geometry;
}

// Runs fn() on `context` (its pool, one call at a time) and trims its scratch afterwards, also
// after a failure (NaN input, out of memory).
template <class Fn>
void OnContext(Context* context, bool keep_output, Fn&& fn) {
  std::lock_guard<std::mutex> lock(context->call_mutex());
  context->TrimScratch(false);  // the previous call's streams are no longer readable
  PoolScope scope(context->pool());
  try {
    fn();
  } catch (...) {
    context->TrimScratch(false);
    throw;
  }
  context->TrimScratch(keep_output);
}

}  // namespace

const std::vector<uint8_t>& EncodeStream(Context* context, const void* data, int dtype,
                                         const int64_t* shape, uint32_t ndim,
                                         const CodecParams& params, SelectionPath path) {
  CodecParams call = params;
  call.threads = CallThreads(*context, params.threads);
  const Geometry geometry = CheckedGeometry(data, dtype, shape, ndim, call);
  OnContext(context, true,
            [&] { EncodeStreamWith(data, dtype, shape, ndim, geometry, call, path, context, 0); });
  return context->workspace(0).encode.stream;
}

void EncodeStream(const void* data, int dtype, const int64_t* shape, uint32_t ndim,
                  const CodecParams& params, SelectionPath path, std::vector<uint8_t>* out) {
  LeasedContext lease;
  const std::vector<uint8_t>& stream =
      EncodeStream(&lease.get(), data, dtype, shape, ndim, params, path);
  out->assign(stream.begin(), stream.end());
}

void EncodeBatch(Context* context, const void* data, int dtype, const int64_t* shape, uint32_t ndim,
                 const CodecParams& params, const uint8_t** streams, size_t* sizes) {
  if (ndim == 0) throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "a batch needs a first axis");
  CodecParams call = params;
  call.threads = CallThreads(*context, params.threads);
  // The whole batch's shape is checked first (dims >= 0, element count < 2^63), then one item's.
  const Geometry whole = CheckedGeometry(data, dtype, shape, ndim, CodecParams{});
  const uint64_t items = static_cast<uint64_t>(shape[0]);
  if (items == 0) return;
  const Geometry geometry = CheckedGeometry(data, dtype, shape + 1, ndim - 1, call);
  const uint64_t item_elements = whole.num_elements / items;
  const size_t item_bytes = static_cast<size_t>(item_elements) * DtypeSize(dtype);
  const uint8_t* bytes = static_cast<const uint8_t*>(data);
  OnContext(context, true, [&] {
    // Small items: whole items per part, each coded on one thread with the part's workspace.
    // Large items: one after another, each with all the threads.
    const bool by_item = item_elements < kMinElementsPerThread;
    const unsigned parts = by_item ? static_cast<unsigned>(std::min<uint64_t>(
                                         call.threads, std::max<uint64_t>(1, items / 4)))
                                   : 1;
    CodecParams item_params = call;
    if (by_item) item_params.threads = 1;
    std::vector<size_t> offsets(items);
    RunParts(items, parts, [&](unsigned part, uint64_t begin, uint64_t end) {
      ByteBuffer& out = context->workspace(part).streams;
      out.clear();
      for (uint64_t i = begin; i < end; ++i) {
        EncodeStreamWith(bytes + i * item_bytes, dtype, shape + 1, ndim - 1, geometry, item_params,
                         SelectionPath::kRadix, context, part);
        const std::vector<uint8_t>& stream = context->workspace(part).encode.stream;
        offsets[i] = out.size();
        sizes[i] = stream.size();
        out.insert(out.end(), stream.begin(), stream.end());
      }
    });
    // Pointers only now: a part's buffer may have moved while it grew.
    for (unsigned part = 0; part < parts; ++part) {
      const uint8_t* base = context->workspace(part).streams.data();
      for (uint64_t i = PartBegin(items, parts, part); i < PartBegin(items, parts, part + 1); ++i) {
        streams[i] = base + offsets[i];
      }
    }
  });
}

}  // namespace slicer::internal
