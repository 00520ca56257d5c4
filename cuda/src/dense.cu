// Format 2 "dense" launchers (docs/format.md §10-§16, mode 2: §18-§19; mode 3, §21: decode
// only, the encoder refuses trellis). The stream structure is parsed and written by the C++
// codec's one format layer: the decoder takes the parsed body of ParseDense (format/dense_body:
// group steps, class map, frequency tables, chunk table, raw values and payload positions), the
// encoder checks its input with CheckEncodeInput and assembles the stream with WriteStreamHead
// and WriteChecksum (dense/dense_writer), its class map by MakeClassMap, mode 1's low-bit width
// by AutoLowBits (§13.6) and its table kind and table by PickTableKind / MakeKindTable (§13.5,
// the candidates' rANS bytes measured by the device's chunk kernel); the chunks (rANS, the bit
// area with its low-bit plane, reconstruction, quantization) and the statistics the tables come
// from (histograms of q's and h's symbols, mode 2's per-position sums) run on the device.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "codec.hpp"
#include "cuda_check.hpp"
#include "dense/coder.hpp"
#include "dense/dense.hpp"
#include "dense/dense_internal.hpp"
#include "dense/dense_writer.hpp"
#include "dense_kernels.cuh"
#include "format/dense_body.hpp"
#include "launch.hpp"
#include "slicer/slicer_cuda.h"
#include "varint.hpp"

namespace slicer::cuda {

// Test hook: copy every chunk's payload on its own instead of packing it on the device first.
bool dense_copy_per_chunk = false;

namespace {

using dense_gpu::DenseChunk;
using dense_gpu::GroupGeometry;

constexpr uint64_t kAlign = 256;
uint64_t AlignUp(uint64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

struct Carve {
  uint64_t at = 0;
  uint64_t Take(uint64_t bytes) {
    const uint64_t where = at;
    at = AlignUp(at + bytes);
    return where;
  }
};

GroupGeometry Geometry(const dense::Layout& layout, uint64_t n) {
  return GroupGeometry{layout.run, layout.modulo, layout.groups ? n / layout.groups : 0};
}

// Chunks of §13.3 with their coded counts (elements of dense groups); kinds may be nullptr.
std::vector<DenseChunk> MakeChunks(uint64_t n, unsigned chunk_log2, const dense::Layout& layout,
                                   const uint8_t* kinds) {
  const uint64_t chunk = uint64_t{1} << chunk_log2;
  const uint64_t nch = (n + chunk - 1) / chunk;
  std::vector<DenseChunk> chunks(nch);
  uint64_t first = 0;
  for (uint64_t j = 0; j < nch; ++j) {
    DenseChunk& c = chunks[j];
    c = DenseChunk{};
    c.begin = j * chunk;
    c.end = std::min(n, c.begin + chunk);
    if (kinds == nullptr) {
      c.coded = c.end - c.begin;
    } else {
      for (uint64_t i = c.begin; i < c.end;) {
        const uint64_t stop = std::min(c.end, i + layout.RunLeft(i, n));
        if (dense::GroupIsDense(kinds[layout.GroupOf(i)])) c.coded += stop - i;
        i = stop;
      }
    }
    c.first_coded = first;
    first += c.coded;
  }
  return chunks;
}

// Everything the decoder needs from a validated stream's header and tables.
struct DecodePlan2 {
  slicer_dense_info info{};
  dense::Layout layout;
  std::vector<uint8_t> kinds;  // empty: no table
  std::vector<double> steps;
  std::vector<uint64_t> raw_before;
  std::vector<uint16_t> lut;
  std::vector<uint32_t> freq, cum;
  // Mode 2 (§19): per class c, lut [c · 2^14, …), freq [c · 423, …), cum [c · 424, …); the
  // class of every position.
  std::vector<uint8_t> class_map;
  dense::ClassGeometry class_geo;
  std::vector<DenseChunk> chunks;
  uint64_t raw_offset = 0, payload_offset = 0, payload_bytes = 0, coded = 0;
};

struct DecodeTemp2 {
  uint64_t status, payload, kinds, steps, raw_before, lut, freq, cum, class_map, chunks, syms,
      bitpos, total;
};

DecodeTemp2 MakeDecodeTemp2(const DecodePlan2& p, size_t size, bool src_is_device) {
  Carve c;
  DecodeTemp2 t{};
  const uint64_t groups = p.kinds.size();
  t.status = c.Take(4);
  t.payload = c.Take(src_is_device ? 0 : size);
  t.kinds = c.Take(groups);
  t.steps = c.Take(groups * 8);
  t.raw_before = c.Take(groups * 8);
  t.lut = c.Take(p.lut.size() * 2);
  t.freq = c.Take(p.freq.size() * 4);
  t.cum = c.Take(p.cum.size() * 4);
  t.class_map = c.Take(p.class_map.size());
  t.chunks = c.Take(p.chunks.size() * sizeof(DenseChunk));
  t.syms = c.Take(p.coded * 2);
  t.bitpos = c.Take(p.coded * 4);
  t.total = c.at;
  return t;
}

int HostCopy(const void* src, size_t size, bool src_is_device, cudaStream_t stream,
             std::vector<uint8_t>* copy, const uint8_t** bytes) {
  if (!src_is_device) {
    *bytes = static_cast<const uint8_t*>(src);
    return SLICER_OK;
  }
  copy->resize(size);
  if (size) {
    SLICER_CUDA_TRY(cudaMemcpyAsync(copy->data(), src, size, cudaMemcpyDeviceToHost, stream));
    SLICER_CUDA_TRY(cudaStreamSynchronize(stream));
  }
  *bytes = copy->data();
  return SLICER_OK;
}

// Validates the stream with the C++ parser (container, CRC, header, every table) and lays out
// the body it parsed as the kernels read it.
int Plan(const uint8_t* data, size_t size, uint64_t max_elements, DecodePlan2* p) {
  if (data == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  uint32_t version = 0;
  SLICER_TRY_STATUS(dense::CheckContainer(data, size, &version));
  if (version != dense::kVersion) return SLICER_ERR_BAD_VERSION;
  format::DenseBody body;
  SLICER_TRY_STATUS(dense::ParseDense(data, size, max_elements, &p->info, &body));
  const slicer_dense_info& info = p->info;
  const uint64_t n = info.num_elements;
  p->layout = body.layout;
  if (info.has_group_table) {
    p->kinds.assign(body.table, body.table + body.layout.groups);
    p->steps.assign(p->kinds.size(), 0.0);
    p->raw_before.assign(p->kinds.size(), 0);
    uint64_t raws = 0;
    for (size_t g = 0; g < p->kinds.size(); ++g) {
      p->raw_before[g] = raws;
      if (p->kinds[g] == dense::kGroupRaw) ++raws;
      if (dense::GroupIsDense(p->kinds[g])) p->steps[g] = body.steps[g];
    }
  }
  const unsigned nclass = info.classes > 1 ? info.classes : 1;
  const unsigned ntab = static_cast<unsigned>(body.tables.size());  // mode 3: 2 per class
  if (nclass > 1) {  // modes 2 and 3: the class map (N = 0: any L, nothing to place)
    dense::MakeClassGeometry(info.shape, info.ndim, info.class_axis, &p->class_geo);
    p->class_map = std::move(body.class_map);
  }
  if (ntab > 1) {
    p->lut.assign(size_t{ntab} * dense::kProbScale, 0);
    p->freq.assign(size_t{ntab} * dense::kNumSymbols, 0);
    p->cum.assign(size_t{ntab} * (dense::kNumSymbols + 1), 0);
  }
  for (unsigned c = 0; c < ntab; ++c) {
    const format::DenseTable& t = body.tables[c];
    if (t.nsym == 0) continue;
    if (ntab == 1) {
      p->freq = t.freq;
      p->cum = t.cum;
      p->lut.assign(dense::kProbScale, 0);
    } else {
      std::copy(t.freq.begin(), t.freq.end(), p->freq.begin() + c * dense::kNumSymbols);
      std::copy(t.cum.begin(), t.cum.end(), p->cum.begin() + c * (dense::kNumSymbols + 1));
    }
    uint16_t* lut = p->lut.data() + size_t{c} * dense::kProbScale;
    for (size_t q = 0; q < t.nsym; ++q)
      for (uint32_t slot = t.cum[q]; slot < t.cum[q + 1]; ++slot)
        lut[slot] = static_cast<uint16_t>(q);
  }
  const uint64_t chunk = uint64_t{1} << info.chunk_log2;
  p->chunks.resize(body.chunks.size());
  for (size_t j = 0; j < body.chunks.size(); ++j) {
    const format::DenseChunk& b = body.chunks[j];
    DenseChunk& c = p->chunks[j];
    c = DenseChunk{};
    c.begin = j * chunk;
    c.end = std::min(n, c.begin + chunk);
    c.coded = b.coded;
    c.first_coded = p->coded;
    c.rans_len = b.rans_len;
    c.bits_len = b.bits_len;
    c.offset = b.offset - body.raw_end;  // from the first payload byte
    p->coded += b.coded;
  }
  p->raw_offset = body.raw_pos;
  p->payload_offset = body.raw_end;
  p->payload_bytes = size - 4 - body.raw_end;
  // Raw values are finite (checked by the C++ decoder after the buffer size).
  return SLICER_OK;
}

int DenseDecode(const void* src, size_t size, bool src_is_device, uint64_t max_elements, void* temp,
                size_t temp_bytes, void* dst, size_t dst_bytes, cudaStream_t stream) {
  if (src == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  std::vector<uint8_t> copy;
  const uint8_t* bytes;
  SLICER_TRY_STATUS(HostCopy(src, size, src_is_device, stream, &copy, &bytes));
  DecodePlan2 p;
  SLICER_TRY_STATUS(Plan(bytes, size, max_elements, &p));
  const uint64_t n = p.info.num_elements;
  const size_t item = dense::DtypeBytes(p.info.dtype);
  if (dst_bytes < n * item) return SLICER_ERR_BUFFER_TOO_SMALL;
  if (!format::RawValuesFinite(bytes, p.info.dtype, p.raw_offset, p.raw_offset + p.info.raw_bytes))
    return SLICER_ERR_CORRUPT;
  if (n == 0) return SLICER_OK;
  if (dst == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  const DecodeTemp2 t = MakeDecodeTemp2(p, size, src_is_device);
  auto* temp8 = static_cast<uint8_t*>(temp);
  if (temp8 == nullptr || temp_bytes < t.total) return SLICER_ERR_TEMP_TOO_SMALL;
  auto put = [&](uint64_t at, const void* from, size_t len) -> int {
    if (len) {
      SLICER_CUDA_TRY(cudaMemcpyAsync(temp8 + at, from, len, cudaMemcpyHostToDevice, stream));
    }
    return SLICER_OK;
  };
  SLICER_CUDA_TRY(cudaMemsetAsync(temp8 + t.status, 0, 4, stream));
  const uint8_t* base = static_cast<const uint8_t*>(src);
  if (!src_is_device) {
    SLICER_TRY_STATUS(put(t.payload, bytes, size));
    base = temp8 + t.payload;
  }
  SLICER_TRY_STATUS(put(t.kinds, p.kinds.data(), p.kinds.size()));
  SLICER_TRY_STATUS(put(t.steps, p.steps.data(), p.steps.size() * 8));
  SLICER_TRY_STATUS(put(t.raw_before, p.raw_before.data(), p.raw_before.size() * 8));
  SLICER_TRY_STATUS(put(t.lut, p.lut.data(), p.lut.size() * 2));
  SLICER_TRY_STATUS(put(t.freq, p.freq.data(), p.freq.size() * 4));
  SLICER_TRY_STATUS(put(t.cum, p.cum.data(), p.cum.size() * 4));
  SLICER_TRY_STATUS(put(t.class_map, p.class_map.data(), p.class_map.size()));
  SLICER_TRY_STATUS(put(t.chunks, p.chunks.data(), p.chunks.size() * sizeof(DenseChunk)));
  dense_gpu::DecodeArgs a{};
  a.payload = base + p.payload_offset;
  a.chunks = reinterpret_cast<const DenseChunk*>(temp8 + t.chunks);
  a.kinds = p.kinds.empty() ? nullptr : temp8 + t.kinds;
  a.steps = reinterpret_cast<const double*>(temp8 + t.steps);
  a.raw_before = reinterpret_cast<const uint64_t*>(temp8 + t.raw_before);
  a.raw = base + p.raw_offset;
  a.geo = Geometry(p.layout, n);
  a.lut = reinterpret_cast<const uint16_t*>(temp8 + t.lut);
  a.freq = reinterpret_cast<const uint32_t*>(temp8 + t.freq);
  a.cum = reinterpret_cast<const uint32_t*>(temp8 + t.cum);
  a.nsym = static_cast<unsigned>(p.info.symbols);
  a.nclass = p.info.classes > 1 ? p.info.classes : 1;
  a.class_map = temp8 + t.class_map;
  a.class_len = p.class_geo.length;
  a.class_inner = p.class_geo.inner;
  dense::GroupStep(p.info.step, 0, &a.base_step);
  a.off1 = p.info.offset1 / 256.0;
  a.off2 = p.info.offset2 / 256.0;
  a.trellis = p.info.mode == 3 ? 1 : 0;
  a.low_bits = p.info.low_bits;  // §13.6 (mode 1)
  a.toff[0] = p.info.offset1 / 256.0;
  a.toff[1] = p.info.offset2 / 256.0;
  a.toff[2] = p.info.trellis_offset1 / 256.0;
  a.toff[3] = p.info.trellis_offset2 / 256.0;
  a.item = static_cast<unsigned>(item);
  a.syms = reinterpret_cast<uint16_t*>(temp8 + t.syms);
  a.bitpos = reinterpret_cast<uint32_t*>(temp8 + t.bitpos);
  a.status = reinterpret_cast<uint32_t*>(temp8 + t.status);
  const unsigned grid = static_cast<unsigned>(p.chunks.size());
  switch (p.info.dtype) {
    case SLICER_FLOAT64:
      SLICER_LAUNCH(dense_gpu::DenseDecodeKernel<double>, grid, kThreads, stream, a,
                    static_cast<double*>(dst));
      break;
    case SLICER_FLOAT32:
      SLICER_LAUNCH(dense_gpu::DenseDecodeKernel<float>, grid, kThreads, stream, a,
                    static_cast<float*>(dst));
      break;
    case SLICER_FLOAT16:
      SLICER_LAUNCH(dense_gpu::DenseDecodeKernel<__half>, grid, kThreads, stream, a,
                    static_cast<__half*>(dst));
      break;
    default:
      SLICER_LAUNCH(dense_gpu::DenseDecodeKernel<__nv_bfloat16>, grid, kThreads, stream, a,
                    static_cast<__nv_bfloat16*>(dst));
      break;
  }
  SLICER_CUDA_LAUNCHED();
  uint32_t status = 0;
  SLICER_CUDA_TRY(cudaMemcpyAsync(&status, temp8 + t.status, 4, cudaMemcpyDeviceToHost, stream));
  SLICER_CUDA_TRY(cudaStreamSynchronize(stream));
  return static_cast<int>(status);
}

// ---- Encode ---------------------------------------------------------------------------------

struct EncodeSetup {
  dense::EncodeInput in;  // the C++ encoders' checked input (nclass 1: mode 1; 2 … 16: mode 2)
  std::vector<DenseChunk> chunks;
  bool plane = false;  // mode 1 with low_bits ≠ 0: a low-bit plane (§13.6) may be written
};

int Setup(const void* data, int dtype, const int64_t* shape, uint32_t ndim,
          const slicer_dense_params* params, EncodeSetup* s) {
  if (dtype < SLICER_FLOAT32 || dtype > SLICER_FLOAT64) return SLICER_ERR_UNSUPPORTED_DTYPE;
  SLICER_TRY_STATUS(dense::CheckParams(params));
  // Mode 3 (trellis, §21) is encoded on the host only (slicer_dense_params.trellis).
  if (params->trellis) return SLICER_ERR_INVALID_ARGUMENT;
  try {  // shape, layout, class axis (§19.1), bounds, group table
    dense::CheckEncodeInput(data, shape, ndim, *params, &s->in);
  } catch (const internal::StatusError& error) {
    return error.status();
  }
  const dense::EncodeInput& in = s->in;
  s->chunks =
      MakeChunks(in.n, params->chunk_log2, in.layout, in.kinds.empty() ? nullptr : in.kinds.data());
  s->plane = in.nclass == 1 && params->low_bits != 0;  // CheckParams: 1 … 15 or auto
  return SLICER_OK;
}

// Elements a chunk's scratch region is sized for: a full chunk, or the whole input if shorter.
uint64_t RegionElements(uint64_t n, unsigned chunk_log2) {
  return std::min(uint64_t{1} << chunk_log2, std::max<uint64_t>(n, 1));
}

struct EncodeTemp2 {
  uint64_t kinds, steps, syms, extras, lows, hist, sums, error, class_sums, class_hist, freq, cum,
      class_map, chunks, out, offsets, scratch, total;
};

EncodeTemp2 MakeEncodeTemp2(const EncodeSetup& s, unsigned chunk_log2) {
  Carve c;
  EncodeTemp2 t{};
  const dense::EncodeInput& in = s.in;
  const uint64_t groups = in.kinds.size();
  t.kinds = c.Take(groups);
  t.steps = c.Take(groups * 8);
  t.syms = c.Take(in.n * 2);
  t.extras = c.Take(in.n * 8);
  t.lows = c.Take(s.plane ? in.n * 2 : 0);  // §13.6: each coded element's l
  t.hist = c.Take(dense::kNumSymbols * 8);
  t.sums = c.Take(4 * 8);
  t.error = c.Take(8);
  // Mode 2 (zeroed with hist … error): S_a per position, the per-class histograms.
  const uint64_t classes = in.nclass > 1 ? in.nclass : 0;
  t.class_sums = c.Take(classes ? in.geo.length * 8 : 0);
  t.class_hist = c.Take(classes * dense::kNumSymbols * 8);
  t.freq = c.Take(uint64_t{in.nclass} * dense::kNumSymbols * 4);
  t.cum = c.Take(uint64_t{in.nclass} * (dense::kNumSymbols + 1) * 4);
  t.class_map = c.Take(classes ? in.geo.length : 0);
  t.chunks = c.Take(s.chunks.size() * sizeof(DenseChunk));
  t.out = c.Take(s.chunks.size() * 3 * 8);
  t.offsets = c.Take(s.chunks.size() * 8);
  const uint64_t elems = RegionElements(in.n, chunk_log2);
  t.scratch = c.Take(s.chunks.size() * (dense_gpu::RansCap(elems) + dense_gpu::BitsCap(elems)));
  t.total = c.at;
  return t;
}

template <typename T>
int LaunchQuantize(const dense_gpu::EncodeArgs& a, const void* data, cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>((a.n + kThreads - 1) / kThreads);
  SLICER_LAUNCH(dense_gpu::DenseQuantizeKernel<T>, grid, kThreads, stream, a,
                static_cast<const T*>(data));
  SLICER_CUDA_LAUNCHED();
  return SLICER_OK;
}

int DenseEncodeHost(const void* data, int dtype, const int64_t* shape, uint32_t ndim,
                    const slicer_dense_params* params, void* temp, size_t temp_bytes,
                    void* dst_host, size_t dst_capacity, size_t* written, cudaStream_t stream) {
  if (written == nullptr || (dst_host == nullptr && dst_capacity > 0)) {
    return SLICER_ERR_INVALID_ARGUMENT;
  }
  *written = 0;
  EncodeSetup s;
  SLICER_TRY_STATUS(Setup(data, dtype, shape, ndim, params, &s));
  const dense::EncodeInput& in = s.in;
  const EncodeTemp2 t = MakeEncodeTemp2(s, params->chunk_log2);
  auto* temp8 = static_cast<uint8_t*>(temp);
  if (in.n > 0 && (temp8 == nullptr || temp_bytes < t.total)) return SLICER_ERR_TEMP_TOO_SMALL;
  const bool mode2 = in.nclass > 1;
  const unsigned nclass = in.nclass;
  const uint64_t length = in.geo.length;  // mode 2: positions along the class axis
  const dense_gpu::ClassPositions positions{mode2 ? length : 1, in.geo.inner};
  unsigned long long hist[dense::kNumSymbols] = {};
  unsigned long long sums[4] = {};
  std::vector<uint64_t> lens(3 * s.chunks.size(), 0);
  // Mode 2 (§18.2, §19.4): S_a per position, the class map, per-class symbol counts.
  std::vector<uint64_t> class_sums(mode2 ? length : 0, 0);
  std::vector<uint8_t> class_map(mode2 ? length : 0, 0);
  std::vector<unsigned long long> class_hist(mode2 ? size_t{nclass} * dense::kNumSymbols : 0, 0);
  int8_t o1 = params->offset1, o2 = params->offset2;
  dense_gpu::EncodeArgs a{};
  if (in.n > 0) {
    SLICER_CUDA_TRY(cudaMemcpyAsync(temp8 + t.kinds, in.kinds.data(), in.kinds.size(),
                                    cudaMemcpyHostToDevice, stream));
    SLICER_CUDA_TRY(cudaMemcpyAsync(temp8 + t.steps, in.steps.data(), in.steps.size() * 8,
                                    cudaMemcpyHostToDevice, stream));
    SLICER_CUDA_TRY(cudaMemsetAsync(temp8 + t.hist, 0, t.freq - t.hist, stream));
    SLICER_CUDA_TRY(cudaMemsetAsync(temp8 + t.error, 0xFF, 8, stream));
    a.n = in.n;
    a.kinds = in.kinds.empty() ? nullptr : temp8 + t.kinds;
    a.steps = reinterpret_cast<const double*>(temp8 + t.steps);
    a.geo = Geometry(in.layout, in.n);
    dense::GroupStep(params->step, 0, &a.base_step);
    a.rho = params->rho_256 / 256.0;
    a.syms = reinterpret_cast<uint16_t*>(temp8 + t.syms);
    a.extras = reinterpret_cast<uint64_t*>(temp8 + t.extras);
    a.hist = reinterpret_cast<unsigned long long*>(temp8 + t.hist);
    a.sums = reinterpret_cast<unsigned long long*>(temp8 + t.sums);
    a.error = reinterpret_cast<unsigned long long*>(temp8 + t.error);
    a.class_sums = mode2 ? reinterpret_cast<unsigned long long*>(temp8 + t.class_sums) : nullptr;
    a.positions = positions;
    switch (dtype) {
      case SLICER_FLOAT64:
        SLICER_TRY_STATUS(LaunchQuantize<double>(a, data, stream));
        break;
      case SLICER_FLOAT32:
        SLICER_TRY_STATUS(LaunchQuantize<float>(a, data, stream));
        break;
      case SLICER_FLOAT16:
        SLICER_TRY_STATUS(LaunchQuantize<__half>(a, data, stream));
        break;
      default:
        SLICER_TRY_STATUS(LaunchQuantize<__nv_bfloat16>(a, data, stream));
        break;
    }
    unsigned long long error = 0;
    SLICER_CUDA_TRY(
        cudaMemcpyAsync(hist, temp8 + t.hist, sizeof(hist), cudaMemcpyDeviceToHost, stream));
    SLICER_CUDA_TRY(
        cudaMemcpyAsync(sums, temp8 + t.sums, sizeof(sums), cudaMemcpyDeviceToHost, stream));
    SLICER_CUDA_TRY(cudaMemcpyAsync(&error, temp8 + t.error, 8, cudaMemcpyDeviceToHost, stream));
    if (mode2) {
      SLICER_CUDA_TRY(cudaMemcpyAsync(class_sums.data(), temp8 + t.class_sums, length * 8,
                                      cudaMemcpyDeviceToHost, stream));
    }
    SLICER_CUDA_TRY(cudaStreamSynchronize(stream));
    if (error != ~0ull) return static_cast<int>(error & 0xFF);  // the first bad element's status
    if (params->auto_offsets) {
      o1 = dense::OffsetSums::Offset(static_cast<int64_t>(sums[0]), sums[2]);
      o2 = dense::OffsetSums::Offset(static_cast<int64_t>(sums[1]), sums[3]);
    }
  }
  if (mode2) {  // the map by the one rule of §18.2, then the counts of each class on the device
    dense::MakeClassMap(in, *params, class_sums, &class_map);  // §18.2-§18.4
    if (in.n > 0) {
      SLICER_CUDA_TRY(cudaMemcpyAsync(temp8 + t.class_map, class_map.data(), length,
                                      cudaMemcpyHostToDevice, stream));
      dense_gpu::ClassHistArgs h{};
      h.n = in.n;
      h.syms = a.syms;
      h.class_map = temp8 + t.class_map;
      h.positions = positions;
      h.nclass = nclass;
      h.hist = reinterpret_cast<unsigned long long*>(temp8 + t.class_hist);
      const uint64_t per_block = uint64_t{kThreads} * dense_gpu::kClassHistItems;
      SLICER_LAUNCH(dense_gpu::DenseClassHistKernel,
                    static_cast<unsigned>((in.n + per_block - 1) / per_block), kThreads, stream, h);
      SLICER_CUDA_LAUNCHED();
      SLICER_CUDA_TRY(cudaMemcpyAsync(class_hist.data(), temp8 + t.class_hist,
                                      class_hist.size() * 8, cudaMemcpyDeviceToHost, stream));
      SLICER_CUDA_TRY(cudaStreamSynchronize(stream));
    }
  }
  // Mode 1's low-bit plane (§13.6): k as given or by the rule of AutoLowBits on the histogram
  // of q's symbols; then the device splits every code into h and l, and hist counts h's symbols.
  unsigned low_bits = 0;
  if (s.plane) {
    uint64_t q_hist[dense::kNumSymbols];
    std::copy(hist, hist + dense::kNumSymbols, q_hist);
    low_bits = params->low_bits == SLICER_DENSE_LOW_BITS_AUTO ? dense::AutoLowBits(q_hist)
                                                              : params->low_bits;
    if (low_bits != 0 && in.n > 0) {
      SLICER_CUDA_TRY(cudaMemsetAsync(temp8 + t.hist, 0, sizeof(hist), stream));
      dense_gpu::LowBitsArgs l{};
      l.n = in.n;
      l.syms = a.syms;
      l.extras = a.extras;
      l.lows = reinterpret_cast<uint16_t*>(temp8 + t.lows);
      l.k = low_bits;
      l.hist = a.hist;
      SLICER_LAUNCH(dense_gpu::DenseLowBitsKernel,
                    static_cast<unsigned>((in.n + kThreads - 1) / kThreads), kThreads, stream, l);
      SLICER_CUDA_LAUNCHED();
      SLICER_CUDA_TRY(
          cudaMemcpyAsync(hist, temp8 + t.hist, sizeof(hist), cudaMemcpyDeviceToHost, stream));
      SLICER_CUDA_TRY(cudaStreamSynchronize(stream));
    }
  }
  // The frequency tables (§13.1, §13.2; mode 2: one per class, an empty class with nsym = 0,
  // §19.2): count classes and normalised frequencies, laid out per class as the kernels read
  // them (freq: kNumSymbols per class, cum: kNumSymbols + 1).
  std::vector<unsigned> nsym_of(nclass, 0);
  std::vector<std::vector<unsigned>> count_classes(nclass);
  std::vector<uint32_t> freq_all(size_t{nclass} * dense::kNumSymbols, 0);
  std::vector<uint32_t> cum_all(size_t{nclass} * (dense::kNumSymbols + 1), 0);
  for (unsigned c = 0; c < nclass; ++c) {
    const unsigned long long* h = mode2 ? class_hist.data() + size_t{c} * dense::kNumSymbols : hist;
    unsigned nsym = 0;
    for (unsigned q = 0; q < dense::kNumSymbols; ++q)
      if (h[q]) nsym = q + 1;
    nsym_of[c] = nsym;
    count_classes[c].resize(nsym);
    for (unsigned q = 0; q < nsym; ++q) count_classes[c][q] = h[q] ? dense::CountClass(h[q]) : 0;
    std::vector<uint32_t> freq, cum;
    dense::Normalize(count_classes[c], &freq, &cum);
    std::copy(freq.begin(), freq.end(), freq_all.begin() + size_t{c} * dense::kNumSymbols);
    std::copy(cum.begin(), cum.end(), cum_all.begin() + size_t{c} * (dense::kNumSymbols + 1));
  }
  const bool coded = in.n > 0 && !s.chunks.empty();
  if (coded) {
    SLICER_CUDA_TRY(cudaMemcpyAsync(temp8 + t.chunks, s.chunks.data(),
                                    s.chunks.size() * sizeof(DenseChunk), cudaMemcpyHostToDevice,
                                    stream));
  }
  // Every chunk's rANS bytes and bit area with the tables freq / cum (laid out as freq_all /
  // cum_all) into the scratch regions; lens: per chunk the rANS start, rANS and bit lengths.
  auto encode_chunks = [&](const std::vector<uint32_t>& freq,
                           const std::vector<uint32_t>& cum) -> int {
    if (!coded) return SLICER_OK;
    SLICER_CUDA_TRY(cudaMemcpyAsync(temp8 + t.freq, freq.data(), freq.size() * 4,
                                    cudaMemcpyHostToDevice, stream));
    SLICER_CUDA_TRY(cudaMemcpyAsync(temp8 + t.cum, cum.data(), cum.size() * 4,
                                    cudaMemcpyHostToDevice, stream));
    SLICER_CUDA_TRY(cudaMemsetAsync(temp8 + t.scratch, 0, t.total - t.scratch, stream));
    dense_gpu::ChunkEncodeArgs c{};
    c.chunks = reinterpret_cast<const DenseChunk*>(temp8 + t.chunks);
    c.syms = a.syms;
    c.extras = a.extras;
    c.freq = reinterpret_cast<const uint32_t*>(temp8 + t.freq);
    c.cum = reinterpret_cast<const uint32_t*>(temp8 + t.cum);
    c.nsym = nsym_of[0];
    c.nclass = nclass;
    c.class_map = temp8 + t.class_map;
    c.positions = positions;
    c.low_bits = low_bits;
    c.lows = reinterpret_cast<const uint16_t*>(temp8 + t.lows);
    c.scratch = temp8 + t.scratch;
    c.chunk_elems = RegionElements(in.n, params->chunk_log2);
    c.out = reinterpret_cast<uint64_t*>(temp8 + t.out);
    SLICER_LAUNCH(dense_gpu::DenseChunkEncodeKernel, static_cast<unsigned>(s.chunks.size()),
                  kThreads, stream, c);
    SLICER_CUDA_LAUNCHED();
    SLICER_CUDA_TRY(cudaMemcpyAsync(lens.data(), temp8 + t.out, lens.size() * 8,
                                    cudaMemcpyDeviceToHost, stream));
    SLICER_CUDA_TRY(cudaStreamSynchronize(stream));
    return SLICER_OK;
  };
  // Mode 1's table kind (§13.5) by the C++ encoder's rule, from the counts of the coded symbols
  // (h's with a plane); "auto" measures each candidate's rANS bytes with the chunk kernel.
  dense::KindTable kind_table;
  unsigned table_kind = 0;
  if (!mode2 && params->table_kind != 0) {
    uint64_t counts[dense::kNumSymbols];
    std::copy(hist, hist + dense::kNumSymbols, counts);
    int status = SLICER_OK;
    const auto rans_bytes = [&](const dense::KindTable& cand) -> uint64_t {
      std::vector<uint32_t> freq(dense::kNumSymbols, 0), cum(dense::kNumSymbols + 1, 0);
      std::copy(cand.freq.begin(), cand.freq.end(), freq.begin());
      std::copy(cand.cum.begin(), cand.cum.end(), cum.begin());
      if (status == SLICER_OK) status = encode_chunks(freq, cum);
      uint64_t len = 0;
      for (size_t j = 0; j < s.chunks.size(); ++j) {
        if (s.chunks[j].coded == 0) continue;
        len += lens[3 * j + 1] + internal::VarintLength(lens[3 * j + 1]);
      }
      return len;
    };
    table_kind = dense::PickTableKind(params->table_kind, counts, rans_bytes, &kind_table);
    SLICER_TRY_STATUS(status);
    if (table_kind != 0) {
      std::fill(freq_all.begin(), freq_all.end(), 0);
      std::fill(cum_all.begin(), cum_all.end(), 0);
      std::copy(kind_table.freq.begin(), kind_table.freq.end(), freq_all.begin());
      std::copy(kind_table.cum.begin(), kind_table.cum.end(), cum_all.begin());
    }
  }
  SLICER_TRY_STATUS(encode_chunks(freq_all, cum_all));
  // Header, parameters, group table, class map, tables and chunk table by the C++ codec's writer
  // (§10, §12.1, §13; mode 2: §19.1, §19.2); the raw values and payloads follow from the device.
  const uint64_t params_len = mode2 ? dense::kClassParamsLen : dense::kParamsLen;
  uint8_t mp[11];
  std::memcpy(mp, &params->step, 4);
  mp[4] = params->rho_256;
  mp[5] = static_cast<uint8_t>(o1);
  mp[6] = static_cast<uint8_t>(o2);
  mp[7] = params->chunk_log2;
  // §13.5: bits 1-3 the table kind; §13.6: bits 4-7 the low-bit width
  mp[8] = static_cast<uint8_t>((in.has_table ? 1 : 0) | table_kind << 1 | low_bits << 4);
  mp[9] = params->class_axis;
  mp[10] = static_cast<uint8_t>(nclass);
  std::vector<uint64_t> chunk_lens(2 * s.chunks.size());
  uint64_t payload = 0;
  for (size_t j = 0; j < s.chunks.size(); ++j) {
    chunk_lens[2 * j] = lens[3 * j + 1];
    chunk_lens[2 * j + 1] = lens[3 * j + 2];
    payload += lens[3 * j + 1] + lens[3 * j + 2];
  }
  std::vector<uint8_t> head;
  dense::WriteStreamHead(in, nullptr, dtype, shape, ndim, *params,
                         mode2 ? dense::kModeClasses : dense::kModeDense, mp, params_len, class_map,
                         count_classes, nsym_of, chunk_lens, &head,
                         table_kind != 0 ? &kind_table.body : nullptr);
  const size_t item = dense::DtypeBytes(dtype);
  uint64_t raw_elems = 0;
  for (uint8_t k : in.kinds)
    if (k == dense::kGroupRaw) raw_elems += in.layout.groups ? in.n / in.layout.groups : 0;
  const uint64_t size = head.size() + raw_elems * item + payload + 4;
  if (size > dst_capacity) return SLICER_ERR_BUFFER_TOO_SMALL;
  auto* out = static_cast<uint8_t*>(dst_host);
  std::memcpy(out, head.data(), head.size());
  uint64_t at = head.size();
  const auto* src = static_cast<const uint8_t*>(data);
  for (uint64_t g = 0; g < in.kinds.size(); ++g) {  // raw groups: their elements in flat order
    if (in.kinds[g] != dense::kGroupRaw) continue;
    for (uint64_t i = 0; i < in.n;) {
      const uint64_t stop = std::min(in.n, i + in.layout.RunLeft(i, in.n));
      if (in.layout.GroupOf(i) == g) {
        SLICER_CUDA_TRY(cudaMemcpyAsync(out + at, src + item * i, item * (stop - i),
                                        cudaMemcpyDeviceToHost, stream));
        at += item * (stop - i);
      }
      i = stop;
    }
  }
  const uint64_t elems = RegionElements(in.n, params->chunk_log2);
  const uint64_t region = dense_gpu::RansCap(elems) + dense_gpu::BitsCap(elems);
  if (payload > 0 && payload <= t.hist - t.syms && !dense_copy_per_chunk) {
    // The symbol / extra-bit arrays are free now: pack the payload there, copy it once.
    std::vector<uint64_t> offsets(s.chunks.size());
    uint64_t o = 0;
    for (size_t j = 0; j < s.chunks.size(); ++j) {
      offsets[j] = o;
      o += lens[3 * j + 1] + lens[3 * j + 2];
    }
    SLICER_CUDA_TRY(cudaMemcpyAsync(temp8 + t.offsets, offsets.data(), offsets.size() * 8,
                                    cudaMemcpyHostToDevice, stream));
    SLICER_LAUNCH(dense_gpu::DensePackKernel, static_cast<unsigned>(s.chunks.size()), kThreads,
                  stream, temp8 + t.scratch, elems,
                  reinterpret_cast<const uint64_t*>(temp8 + t.out),
                  reinterpret_cast<const uint64_t*>(temp8 + t.offsets), temp8 + t.syms);
    SLICER_CUDA_LAUNCHED();
    SLICER_CUDA_TRY(
        cudaMemcpyAsync(out + at, temp8 + t.syms, payload, cudaMemcpyDeviceToHost, stream));
    at += payload;
  } else {
    for (size_t j = 0; j < s.chunks.size(); ++j) {
      const uint8_t* r = temp8 + t.scratch + j * region;
      if (lens[3 * j + 1]) {
        SLICER_CUDA_TRY(cudaMemcpyAsync(out + at, r + lens[3 * j], lens[3 * j + 1],
                                        cudaMemcpyDeviceToHost, stream));
        at += lens[3 * j + 1];
      }
      if (lens[3 * j + 2]) {
        SLICER_CUDA_TRY(cudaMemcpyAsync(out + at, r + dense_gpu::RansCap(elems), lens[3 * j + 2],
                                        cudaMemcpyDeviceToHost, stream));
        at += lens[3 * j + 2];
      }
    }
  }
  SLICER_CUDA_TRY(cudaStreamSynchronize(stream));
  dense::WriteChecksum(out, at);
  *written = at + 4;
  return SLICER_OK;
}

}  // namespace
}  // namespace slicer::cuda

extern "C" {

int slicer_cuda_dense_decode_temp_size(const void* src, size_t size, int src_is_device,
                                       uint64_t max_elements, slicer_dense_info* info,
                                       size_t* temp_bytes, void* stream) {
  if (temp_bytes == nullptr || src == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  std::vector<uint8_t> copy;
  const uint8_t* bytes;
  const int copied = slicer::cuda::HostCopy(src, size, src_is_device != 0,
                                            static_cast<cudaStream_t>(stream), &copy, &bytes);
  if (copied != SLICER_OK) return copied;
  slicer::cuda::DecodePlan2 p;
  const int status = slicer::cuda::Plan(bytes, size, max_elements, &p);
  if (status != SLICER_OK) return status;
  if (info != nullptr) *info = p.info;
  *temp_bytes = slicer::cuda::MakeDecodeTemp2(p, size, src_is_device != 0).total;
  return SLICER_OK;
}

int slicer_cuda_dense_decode(const void* src, size_t size, int src_is_device, uint64_t max_elements,
                             void* temp, size_t temp_bytes, void* dst_device, size_t dst_bytes,
                             void* stream) {
  return slicer::cuda::DenseDecode(src, size, src_is_device != 0, max_elements, temp, temp_bytes,
                                   dst_device, dst_bytes, static_cast<cudaStream_t>(stream));
}

int slicer_cuda_dense_encode_temp_size(const int64_t* shape, uint32_t ndim, int dtype,
                                       const slicer_dense_params* params, size_t* temp_bytes) {
  if (temp_bytes == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  slicer::cuda::EncodeSetup s;
  static const uint8_t kProbe = 0;  // the data pointer is not read here
  const int status = slicer::cuda::Setup(&kProbe, dtype, shape, ndim, params, &s);
  if (status != SLICER_OK) return status;
  *temp_bytes = slicer::cuda::MakeEncodeTemp2(s, params->chunk_log2).total;
  return SLICER_OK;
}

int slicer_cuda_dense_encode_host(const void* data_device, int dtype, const int64_t* shape,
                                  uint32_t ndim, const slicer_dense_params* params, void* temp,
                                  size_t temp_bytes, void* dst_host, size_t dst_capacity,
                                  size_t* written_host, void* stream) {
  return slicer::cuda::DenseEncodeHost(data_device, dtype, shape, ndim, params, temp, temp_bytes,
                                       dst_host, dst_capacity, written_host,
                                       static_cast<cudaStream_t>(stream));
}

}  // extern "C"
