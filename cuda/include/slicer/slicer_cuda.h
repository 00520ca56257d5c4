/* SLICER codec on NVIDIA GPUs: stream-ordered C ABI (format 1, docs/format.md).
 *
 * Every stream this backend writes is byte-identical to the CPU codec's (cpp/) for the same
 * input, parameters and seed, and each decoder accepts the other's streams.
 *
 * Conventions:
 * - Functions return slicer_status codes (slicer/slicer.h) or the CUDA-specific codes below.
 * - `stream` is a cudaStream_t passed as void* so that this header needs no CUDA headers;
 *   NULL is the legacy default stream. All device work is enqueued on it.
 * - Temporary device memory is owned by the caller: ask *_temp_size, allocate that many bytes
 *   (any alignment from cudaMalloc/cudaMallocAsync), pass it in. The library never allocates
 *   device memory.
 * - The encoders return the stream size on the host, so they synchronize `stream` once (after
 *   the kernels that size the chunks). The device-output encoder returns before the last
 *   copies and the checksum kernel finish: they stay ordered on `stream`.
 * - Groups (one problem each, docs/format.md §3) may hold at most 2^32 - 1 elements here;
 *   larger groups return SLICER_ERR_INVALID_ARGUMENT (use the CPU codec for them). */
#ifndef SLICER_SLICER_CUDA_H_
#define SLICER_SLICER_CUDA_H_

#include <stddef.h>
#include <stdint.h>

#include "slicer/slicer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CUDA-specific status codes (pinned, like slicer_status). */
enum {
  SLICER_ERR_NO_DEVICE = 20,    /* no CUDA driver or no CUDA device */
  SLICER_ERR_CUDA_RUNTIME = 21, /* a CUDA runtime call failed (launch, copy, sync) */
  SLICER_ERR_TEMP_TOO_SMALL = 22 /* temp_bytes is below what *_temp_size asked for */
};

/* Message for any status, including the CUDA-specific ones. */
SLICER_API const char* slicer_cuda_status_string(int status);

/* 1 when a CUDA driver and at least one device are present, else 0. Never fails. */
SLICER_API int slicer_cuda_available(void);

/* The CUDA runtime error behind the last SLICER_ERR_CUDA_RUNTIME of this thread
 * (cudaGetErrorString), or "" when there was none. */
SLICER_API const char* slicer_cuda_last_error(void);

/* --- Encoding one tensor: data is a C-contiguous device array of `dtype`. ------------------ */

/* Temporary device bytes slicer_cuda_encode / slicer_cuda_encode_host need for this shape. */
SLICER_API int slicer_cuda_encode_temp_size(const int64_t* shape, uint32_t ndim, int dtype,
                                            const slicer_params* params, size_t* temp_bytes);

/* Encode into device memory `dst_device` (dst_capacity >= slicer_encode_bound is always
 * enough). *written_host receives the stream size. The checksum kernel runs on the device. */
SLICER_API int slicer_cuda_encode(const void* data_device, int dtype, const int64_t* shape,
                                  uint32_t ndim, const slicer_params* params, void* temp,
                                  size_t temp_bytes, void* dst_device, size_t dst_capacity,
                                  size_t* written_host, void* stream);

/* Same stream, written to host memory `dst_host` (the checksum is computed on the host over
 * the bytes after they arrive). Returns after the copy has completed. */
SLICER_API int slicer_cuda_encode_host(const void* data_device, int dtype, const int64_t* shape,
                                       uint32_t ndim, const slicer_params* params, void* temp,
                                       size_t temp_bytes, void* dst_host, size_t dst_capacity,
                                       size_t* written_host, void* stream);

/* --- Encoding a batch: item b is the slice x[..., b, ...] along `axis`, coded as its own
 * stream, byte-identical to encoding that slice (made contiguous) on its own. One set of
 * launches covers every item (one thread block per group and item for small groups). ------ */

/* shape/ndim describe the whole batch; the items have the shape with `axis` removed. */
SLICER_API int slicer_cuda_encode_batch_temp_size(const int64_t* shape, uint32_t ndim,
                                                  uint32_t axis, int dtype,
                                                  const slicer_params* params,
                                                  size_t* temp_bytes);

/* Item b's stream lands in dst_host at offsets_host[b] with sizes_host[b] bytes; streams are
 * packed back to back. `offsets_host`/`sizes_host` hold shape[axis] entries each.
 * dst_capacity >= shape[axis] * slicer_encode_bound(item) is always enough. */
SLICER_API int slicer_cuda_encode_batch_host(const void* data_device, int dtype,
                                             const int64_t* shape, uint32_t ndim, uint32_t axis,
                                             const slicer_params* params, void* temp,
                                             size_t temp_bytes, void* dst_host,
                                             size_t dst_capacity, size_t* offsets_host,
                                             size_t* sizes_host, void* stream);

/* Same, into device memory (checksums on the device). */
SLICER_API int slicer_cuda_encode_batch(const void* data_device, int dtype, const int64_t* shape,
                                        uint32_t ndim, uint32_t axis,
                                        const slicer_params* params, void* temp,
                                        size_t temp_bytes, void* dst_device, size_t dst_capacity,
                                        size_t* offsets_host, size_t* sizes_host, void* stream);

/* --- Decoding. --------------------------------------------------------------------------- */

/* Reads and validates the header of a stream in host memory or (src_is_device = 1) in device
 * memory. Same checks and codes as slicer_read_header, checksum included (for a device stream
 * the whole stream is copied to the host for it; slicer_cuda_decode_temp_size avoids that). */
SLICER_API int slicer_cuda_read_header(const void* src, size_t size, int src_is_device,
                                       uint64_t max_elements, slicer_header* header,
                                       void* stream);

/* Temporary device bytes slicer_cuda_decode needs for this stream. Reads only the header
 * (copied to the host when src_is_device): its fields are validated as by slicer_read_header
 * and, when `header` is not NULL, returned; the checksum is left to slicer_cuda_decode, so no
 * more than the header leaves the device. */
SLICER_API int slicer_cuda_decode_temp_size(const void* src, size_t size, int src_is_device,
                                            uint64_t max_elements, slicer_header* header,
                                            size_t* temp_bytes, void* stream);

/* Decode into device memory `dst_device` of dst_bytes = num_elements * itemsize. Validates the
 * whole stream as the CPU decoder does; on error the contents of dst are unspecified. Waits for
 * the stream's validation result (one synchronization of `stream`). */
SLICER_API int slicer_cuda_decode(const void* src, size_t size, int src_is_device,
                                  uint64_t max_elements, void* temp, size_t temp_bytes,
                                  void* dst_device, size_t dst_bytes, void* stream);

/* --- Format 2, mode "dense" (docs/format.md §10-§16) and mode 2 (class tables, §18-§19);
 * mode 3 (trellis-coded quantization, §21) is decoded but not encoded: params->trellis = 1 is
 * SLICER_ERR_INVALID_ARGUMENT from both encode functions (encode it with slicer_dense_encode).
 * Streams are byte-identical to slicer_dense_encode's; decoding accepts and rejects
 * exactly what slicer_decode does, with the same status. The header and tables are parsed on the host by the C++ codec's parser, so a
 * device stream is copied to the host once (it is the compressed size); the chunks are decoded
 * on the device, one thread block per chunk. ----------------------------------------------- */

/* Temporary device bytes slicer_cuda_dense_decode needs; validates the whole stream's header,
 * tables and checksum (info, when not NULL, receives slicer_dense_inspect's header fields). */
SLICER_API int slicer_cuda_dense_decode_temp_size(const void* src, size_t size, int src_is_device,
                                                  uint64_t max_elements, slicer_dense_info* info,
                                                  size_t* temp_bytes, void* stream);

/* Decode a dense stream into device memory (dst_bytes >= num_elements * itemsize). Waits for
 * the validation result (one synchronization of `stream`). */
SLICER_API int slicer_cuda_dense_decode(const void* src, size_t size, int src_is_device,
                                        uint64_t max_elements, void* temp, size_t temp_bytes,
                                        void* dst_device, size_t dst_bytes, void* stream);

/* Temporary device bytes slicer_cuda_dense_encode_host needs for this shape and parameters.
 * Mode 2 (params->classes = K >= 2, params->class_axis) is encoded too, with the C++ encoder's
 * bytes: the per-position sums of §18.2 and the per-class histograms on the device, the class
 * map by the C++ rule on the host. Mode 1's low-bit plane (params->low_bits, §13.6) and table
 * kinds (params->table_kind, §13.5), explicit or AUTO, are written too, with the same bytes: the
 * width and the kind are chosen by the C++ rules on the host from the device's histograms. A
 * class axis the shape lacks, or K above its length, is SLICER_ERR_INVALID_ARGUMENT from both
 * functions, as from slicer_dense_encode. */
SLICER_API int slicer_cuda_dense_encode_temp_size(const int64_t* shape, uint32_t ndim, int dtype,
                                                  const slicer_dense_params* params,
                                                  size_t* temp_bytes);

/* Encode a C-contiguous device array into host memory (dst_capacity >=
 * slicer_dense_encode_bound is always enough). Quantization, histograms, the low-bit split and
 * the per-chunk rANS and bit areas run on the device; the class map (mode 2), the low-bit width
 * and the table kind are chosen and the tables are normalised and written on the host.
 * Synchronizes `stream`. */
SLICER_API int slicer_cuda_dense_encode_host(const void* data_device, int dtype,
                                             const int64_t* shape, uint32_t ndim,
                                             const slicer_dense_params* params, void* temp,
                                             size_t temp_bytes, void* dst_host,
                                             size_t dst_capacity, size_t* written_host,
                                             void* stream);

#ifdef __cplusplus
}
#endif
#endif /* SLICER_SLICER_CUDA_H_ */
