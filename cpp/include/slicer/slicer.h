/* SLICER intermediate-feature codec: C ABI (formats 1 and 2, docs/format.md).
 *
 * Errors are values: every function returns a slicer_status whose numeric values are
 * pinned forever (new codes may be added, existing ones never change meaning).
 * All buffers are owned by the caller. No function keeps a pointer after it returns.
 * Thread safety: every function is reentrant; distinct calls may run concurrently.
 * ABI: parameter and info structs may gain trailing fields from one minor version to the next
 * (the shared library's SONAME carries major.minor, e.g. libslicer.so.0.3). Always fill a
 * parameter struct with its *_init function first, and build against the header of the library
 * you link: a program built against another minor version's header must be rebuilt. */
#ifndef SLICER_SLICER_H_
#define SLICER_SLICER_H_

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && defined(SLICER_SHARED_BUILD)
#define SLICER_API __declspec(dllexport)
#elif defined(_WIN32) && defined(SLICER_SHARED)
#define SLICER_API __declspec(dllimport)
#elif defined(__GNUC__)
#define SLICER_API __attribute__((visibility("default")))
#else
#define SLICER_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define SLICER_FORMAT_VERSION 1
#define SLICER_MAX_NDIM 32
#define SLICER_MAX_BLOCKS 64
#define SLICER_MAX_BITS 16

/* Status codes: values are pinned. */
typedef enum slicer_status {
  SLICER_OK = 0,
  SLICER_ERR_INVALID_ARGUMENT = 1,  /* a parameter is out of range or a pointer is NULL */
  SLICER_ERR_UNSUPPORTED_DTYPE = 2, /* dtype is not float32/float16/bfloat16 */
  SLICER_ERR_NONFINITE_INPUT = 3,   /* NaN or infinity in the input */
  SLICER_ERR_BUFFER_TOO_SMALL = 4,  /* the destination cannot hold the result */
  SLICER_ERR_OUT_OF_MEMORY = 5,     /* an internal allocation failed */
  SLICER_ERR_TRUNCATED = 10,        /* the stream ends before a field it needs */
  SLICER_ERR_BAD_MAGIC = 11,        /* not a SLICER stream */
  SLICER_ERR_BAD_VERSION = 12,      /* a SLICER stream of a format version this build cannot read */
  SLICER_ERR_BAD_CHECKSUM = 13,     /* CRC-32 mismatch */
  SLICER_ERR_CORRUPT = 14,          /* a field is invalid or inconsistent */
  SLICER_ERR_LIMIT_EXCEEDED = 15,   /* the stream claims more elements than the caller allows */
  SLICER_ERR_UNSUPPORTED_MODE = 16, /* a well-formed format-2 stream of a mode this build lacks */
  SLICER_ERR_TARGET_UNREACHABLE = 17, /* slicer_dense_encode_budget: no stream meets the target */
  SLICER_ERR_INTERNAL = 99
} slicer_status;

/* Element types, numbered as in the stream (docs/format.md §6). */
typedef enum slicer_dtype {
  SLICER_FLOAT32 = 1,
  SLICER_FLOAT16 = 2,
  SLICER_BFLOAT16 = 3,
  SLICER_FLOAT64 = 4 /* format 2 (dense mode) only */
} slicer_dtype;

/* Encoder parameters, already fixed to the integers the stream stores (docs/format.md §2).
 * Always start from slicer_params_init(). */
typedef struct slicer_params {
  uint32_t sparsity_ppb; /* s · 1e9, 0 … 999 999 999 (default 900 000 000) */
  uint32_t asym_ppb;     /* λ · 1e9, 0 … 999 999 999 (default 0) */
  uint32_t delta_micro;  /* δ · 1e6 (default 10 000 = 0.01) */
  uint64_t seed;         /* tie-break draw seed (default 0) */
  uint8_t bits;          /* q_bit, 1 … 16 (default 8); ignored when level_count > 0 */
  uint8_t blocks_pos;    /* M+, 1 … 64 (default 3) */
  uint8_t blocks_neg;    /* M−, 1 … 64 (default 3) */
  uint8_t level_count;   /* 0: ABQ. >0: fixed multi-level widths levels[0 … level_count) and
                            level_count MUST equal max(blocks_pos, blocks_neg) */
  uint8_t levels[SLICER_MAX_BLOCKS]; /* each 1 … 16; block m of either sign uses levels[m] */
  uint8_t chunk_log2;                /* 6 … 24 (default 14) */
  uint8_t group_rows; /* 0: one group per tensor; 1: one group per row of the last axis */
  uint16_t threads;   /* worker threads, 0 = all hardware threads. Output never depends on it. */
} slicer_params;

/* Read-only description of a stream's header (slicer_read_header). */
typedef struct slicer_header {
  uint32_t format_version;
  uint32_t mode;
  slicer_dtype dtype;
  uint32_t flags;
  uint32_t ndim;
  int64_t shape[SLICER_MAX_NDIM];
  uint64_t num_elements;
  uint32_t sparsity_ppb, asym_ppb, delta_micro;
  uint64_t seed;
  uint32_t bits, blocks_pos, blocks_neg, chunk_log2;
  uint64_t group_count;
} slicer_header;

/* One block of one group (slicer_inspect). */
typedef struct slicer_block_info {
  uint64_t group;
  uint32_t label; /* 0 … M+−1 positive blocks, then negative */
  int32_t sign;   /* +1 or −1 */
  uint32_t index; /* block index within its sign, 0 = largest magnitudes */
  uint64_t count;
  uint32_t width; /* bits per value */
  float lo, hi;   /* magnitude range */
} slicer_block_info;

/* Byte account of a whole stream (slicer_inspect). Bit counts are exact. */
typedef struct slicer_account {
  uint64_t total_bytes;
  uint64_t header_bytes;      /* fixed header incl. shape and parameters */
  uint64_t group_bytes;       /* k and n_pos of every group */
  uint64_t block_meta_bytes;  /* widths and ranges of all blocks */
  uint64_t chunk_table_bytes; /* chunk counts and lengths */
  uint64_t position_bits;     /* Rice parameters + gap codes */
  uint64_t label_bits;
  uint64_t value_bits;
  uint64_t padding_bits;
  uint64_t checksum_bytes;
  uint64_t kept;   /* total kept elements */
  uint64_t chunks; /* total chunks */
} slicer_account;

SLICER_API const char* slicer_status_string(int status);
/* The field or check that made the calling thread's last failing decode, read_header or
 * inspect call reject its stream (e.g. "chunk_log2", "block counts (labels per block differ
 * from c_m)"); "" when that call succeeded or failed for another reason. */
SLICER_API const char* slicer_error_detail(void);
SLICER_API const char* slicer_version(void);     /* library version, e.g. "0.3.0" */
SLICER_API uint32_t slicer_format_version(void); /* highest format this build writes/reads */
/* Bytes per element of a dtype code (4 float32, 2 float16 / bfloat16, 8 float64); 0 for any other
 * value. Format 1 (top-K) takes float32 / float16 / bfloat16 only. */
SLICER_API size_t slicer_dtype_size(int dtype);
SLICER_API void slicer_params_init(slicer_params* params);

/* Upper bound on the encoded size (docs/format.md §8), from shape, dtype and params only. */
SLICER_API int slicer_encode_bound(const int64_t* shape, uint32_t ndim, int dtype,
                                   const slicer_params* params, size_t* bound);

/* Encode a C-contiguous array. `dst` must hold at least slicer_encode_bound bytes (or the
 * call may fail with SLICER_ERR_BUFFER_TOO_SMALL). On success *written is the stream size. */
SLICER_API int slicer_encode(const void* data, int dtype, const int64_t* shape, uint32_t ndim,
                             const slicer_params* params, void* dst, size_t dst_capacity,
                             size_t* written);

/* Validate checksum and header; fill *header. Refuses shapes above max_elements. */
SLICER_API int slicer_read_header(const void* src, size_t size, uint64_t max_elements,
                                  slicer_header* header);

/* Decode into a caller buffer of dst_bytes = num_elements · itemsize of the header's dtype.
 * Fully validates the stream; on error the contents of dst are unspecified. */
SLICER_API int slicer_decode(const void* src, size_t size, uint64_t max_elements, void* dst,
                             size_t dst_bytes, uint32_t threads);

/* Allocator of slicer_decode_alloc: returns a buffer of `bytes` bytes for the output that
 * `header` describes (NULL when it cannot; `bytes` may be 0). */
typedef void* (*slicer_alloc_fn)(void* ctx, const slicer_header* header, size_t bytes);

/* Decode into a buffer obtained from `alloc`, which is called once, only after the header and
 * every group table of the stream have been validated (so a hostile stream cannot make the
 * decoder ask for what it merely claims), with num_elements · itemsize bytes. *header (may be
 * NULL) is filled. The buffer belongs to the caller, also when decoding fails after it was
 * obtained (its contents are then unspecified). */
SLICER_API int slicer_decode_alloc(const void* src, size_t size, uint64_t max_elements,
                                   uint32_t threads, slicer_alloc_fn alloc, void* ctx,
                                   slicer_header* header);

/* Full validation plus byte account and per-block table. `blocks` may be NULL; *num_blocks
 * receives the number of non-empty blocks; at most `blocks_capacity` are written. */
SLICER_API int slicer_inspect(const void* src, size_t size, uint64_t max_elements,
                              slicer_header* header, slicer_account* account,
                              slicer_block_info* blocks, size_t blocks_capacity,
                              size_t* num_blocks);

/* ---------------------------------------------------------------------------------------------
 * Contexts: a worker pool and scratch reused from call to call (no threads started and no
 * fresh memory touched per call). The functions above use contexts of their own, taken from
 * a process-wide free list and running on the process's shared pool.
 *
 * slicer_context_create(t): t > 0 starts a pool of t threads (the calling thread counts as
 * one, so t - 1 workers); t = 0 gives a context with scratch only whose parallel parts run on
 * the process's shared pool (one thread per hardware thread, started on first use). A pool
 * runs one call's parts at a time; a call that finds its pool busy runs its parts on its own
 * thread instead of waiting, so N concurrent calls never start N × cores threads.
 * A context serves one call at a time (concurrent calls on one context are serialized); a
 * multi-threaded server gives each of its threads a context (t = 0 to share one pool).
 * Returns NULL when out of memory. The thread count of a call is its own (params->threads or
 * `threads`; 0 = all), at most the context's. Streams never depend on it. */
typedef struct slicer_context slicer_context;

SLICER_API slicer_context* slicer_context_create(uint32_t threads);
SLICER_API void slicer_context_destroy(slicer_context* context); /* NULL is ignored */
SLICER_API uint32_t slicer_context_threads(const slicer_context* context);

/* Encode like slicer_encode; *stream / *size receive the stream, which the context owns: it
 * stays valid until the context's next call or its destruction. */
SLICER_API int slicer_context_encode(slicer_context* context, const void* data, int dtype,
                                     const int64_t* shape, uint32_t ndim,
                                     const slicer_params* params, const uint8_t** stream,
                                     size_t* size);

/* Encode each of the shape[0] items (of shape shape[1 … ndim)) of a C-contiguous array as its
 * own stream, byte-identical to slicer_encode of that item; one call for a batch of tokens.
 * streams[i] / sizes[i] (arrays of shape[0] entries) receive item i's stream, owned by the
 * context as for slicer_context_encode. */
SLICER_API int slicer_context_encode_batch(slicer_context* context, const void* data, int dtype,
                                           const int64_t* shape, uint32_t ndim,
                                           const slicer_params* params, const uint8_t** streams,
                                           size_t* sizes);

/* slicer_decode on the context's pool. */
SLICER_API int slicer_context_decode(slicer_context* context, const void* src, size_t size,
                                     uint64_t max_elements, void* dst, size_t dst_bytes,
                                     uint32_t threads);

/* slicer_decode_alloc on the context's pool. */
SLICER_API int slicer_context_decode_alloc(slicer_context* context, const void* src, size_t size,
                                           uint64_t max_elements, uint32_t threads,
                                           slicer_alloc_fn alloc, void* ctx,
                                           slicer_header* header);

/* Batch decode: `count` streams (srcs[i], sizes[i]; format 1 or 2) that each hold an array of
 * dtype `dtype` and shape shape[0 ... ndim) are decoded into the rows of one C-contiguous
 * buffer: stream i into dst + i * item_bytes, item_bytes = product(shape) * itemsize, so dst
 * receives an array of shape (count, shape...). dst_bytes must be at least count * item_bytes.
 * Items run in parallel (one thread per item; `threads` as for slicer_decode, on the context's
 * pool for the context variant). Each item is fully validated by the per-stream decoder;
 * statuses[i] receives its status: SLICER_OK, the stream's rejection (as slicer_decode would
 * return it), or SLICER_ERR_INVALID_ARGUMENT when the valid stream holds another dtype or
 * shape. A failed item's row is set to zero; it never affects the other items.
 * Returns SLICER_OK when the call ran (every statuses[i] written; *num_failed, if not NULL,
 * receives how many items failed), else a call-level error (NULL pointers, an unknown dtype,
 * a negative dimension, dst_bytes too small) with statuses untouched and *num_failed = 0. */
SLICER_API int slicer_decode_batch(const void* const* srcs, const size_t* sizes, size_t count,
                                   uint64_t max_elements, int dtype, const int64_t* shape,
                                   uint32_t ndim, void* dst, size_t dst_bytes, int* statuses,
                                   size_t* num_failed, uint32_t threads);
SLICER_API int slicer_context_decode_batch(slicer_context* context, const void* const* srcs,
                                           const size_t* sizes, size_t count,
                                           uint64_t max_elements, int dtype, const int64_t* shape,
                                           uint32_t ndim, void* dst, size_t dst_bytes,
                                           int* statuses, size_t* num_failed, uint32_t threads);

/* ---------------------------------------------------------------------------------------------
 * Format 2, mode 1 "dense" (docs/format.md §10-§16): dead-zone uniform quantizer + rANS; mode 2
 * (§19) the same with one frequency table per class of positions (params.classes >= 2); mode 3
 * (§21) trellis-coded quantization with tables per (class, quantizer) (params.trellis = 1).
 * slicer_decode / slicer_read_header / slicer_inspect accept format-2 streams too (header fields
 * of format 1 that format 2 lacks read 0); slicer_dense_inspect gives the format-2 account. */

#define SLICER_DENSE_LAYOUT_TENSOR 0
#define SLICER_DENSE_LAYOUT_ROWS 1     /* groups are the rows of the last axis */
#define SLICER_DENSE_LAYOUT_CHANNELS 2 /* groups are the planes of axis 1 (N, C, ...) */
#define SLICER_DENSE_GROUP_ZERO 0x80   /* group table byte: nothing coded, decodes to 0 */
#define SLICER_DENSE_GROUP_RAW 0x81    /* group table byte: values stored verbatim */
#define SLICER_DENSE_CLASS_AXIS_LAST 0 /* mode 2: positions along the last axis */
#define SLICER_DENSE_CLASS_AXIS_1 1    /* mode 2: positions along axis 1 (channels) */
/* OR into class_axis: mode 2 with index ranges (class of position a = a·K div L, §18.3, no map
 * bytes) instead of a map by the rule of §18.2 */
#define SLICER_DENSE_CLASS_MAP_RANGES 2
/* OR into class_axis: mode 2 with range boundaries (§18.4): the K − 1 boundaries given in
 * class_bounds (1 ≤ b_1 < … < b_{K−1} ≤ L − 1; position a has class #{j : b_j ≤ a}) are stored
 * as varint gaps. Not together with SLICER_DENSE_CLASS_MAP_RANGES. */
#define SLICER_DENSE_CLASS_MAP_BOUNDS 4
#define SLICER_DENSE_MAX_CLASSES 16
/* classes of slicer_dense_encode_budget only (SLICER_ERR_INVALID_ARGUMENT elsewhere): the class
 * setting the rate model predicts smallest at the step it chose (Python's classes="auto",
 * docs/format.md §19.4): K in 1, 2, 4, 8, 16, the class axis (class_axis's axis, and the other
 * of axes 1 / last for three or more dimensions) and the map kind; class_bounds NULL. */
#define SLICER_DENSE_CLASSES_AUTO 255
/* OR into class_axis with SLICER_DENSE_CLASSES_AUTO to limit the search to one map kind: this
 * flag the §18.2 map only, SLICER_DENSE_CLASS_MAP_RANGES §18.3 ranges only,
 * SLICER_DENSE_CLASS_MAP_BOUNDS §18.4 boundaries only (estimated); none of them: all three
 * (Python's class_map "rank" / "ranges" / "bounds" / None). Not valid with a fixed K. */
#define SLICER_DENSE_CLASS_MAP_RANK 8
/* table_kind: the shortest stream of kinds 0 … 4 (ties to the lower kind; mode 1 only) */
#define SLICER_DENSE_TABLE_AUTO 255
/* low_bits: the width by the encoder rule of docs/format.md §13.6 (mode 1 only; 0 elsewhere) */
#define SLICER_DENSE_LOW_BITS_AUTO 255
#define SLICER_DENSE_MAX_LOW_BITS 15

typedef struct slicer_dense_params {
  float step;         /* base step Δ0 (finite, normal, > 0) */
  uint8_t rho_256;    /* rounding offset ρ·256, 1 … 128 (128 = round to nearest) */
  uint8_t auto_offsets; /* 1: reconstruction offsets by the data rule (§12.3); 0: use below */
  int8_t offset1, offset2; /* reconstruction offsets in 1/256 for |q| = 1 and |q| >= 2 */
  uint8_t chunk_log2; /* 6 … 24 (default 14) */
  uint8_t layout;     /* SLICER_DENSE_LAYOUT_*; only matters with a group table */
  const uint8_t* group_table; /* NULL, or one byte per group (§12.1): int8 step exponent
                                 (−64 … 63) of a dense group, GROUP_ZERO or GROUP_RAW */
  uint64_t group_table_size;  /* entries in group_table (must equal the group count) */
  uint16_t threads;           /* worker threads, 0 = all hardware threads */
  uint8_t classes;    /* 0 or 1: mode 1 (one frequency table); 2 … 16: mode 2 (§19), one table
                         per class of positions along class_axis, the map by the rule of §18.2 */
  uint8_t class_axis; /* mode 2: 0 = last axis, 1 = axis 1 (SLICER_DENSE_CLASS_AXIS_*), with
                         SLICER_DENSE_CLASS_MAP_RANGES or-ed in for index ranges (§18.3) or
                         SLICER_DENSE_CLASS_MAP_BOUNDS for range boundaries (§18.4) */
  const uint64_t* class_bounds; /* with SLICER_DENSE_CLASS_MAP_BOUNDS: classes − 1 boundaries,
                                   else NULL */
  uint32_t class_bounds_count;  /* entries in class_bounds (must equal classes − 1) */
  /* Mode 3 (docs/format.md §21): trellis-coded quantization. trellis = 1 writes mode 3 (classes
   * 0 or 1: one class, 2 … 16: class tables as mode 2, with the same class_axis / class_bounds);
   * rho_256 is then unused. trellis_lambda: the encoder's Lagrange multiplier λ (units of Δ² per
   * bit, finite and > 0; 0.34 is a good default). With auto_offsets = 0, offset1 / offset2 are
   * quantizer Q0's offsets and trellis_offset1 / trellis_offset2 quantizer Q1's (§21.2). The
   * CUDA encoder does not write mode 3 (SLICER_ERR_INVALID_ARGUMENT); encode on the host. */
  uint8_t trellis;
  int8_t trellis_offset1, trellis_offset2;
  double trellis_lambda;
  /* Mode 1's frequency table kind (docs/format.md §13.5): 0 = §13.1's count classes (default,
   * every stream before it), 1 … 3 coarser count classes (2, 1, 0 mantissa bits), 4 = a
   * geometric table of 3 bytes, SLICER_DENSE_TABLE_AUTO = the shortest stream. Modes 2 and 3
   * write kind 0 only (AUTO gives 0 there; 1 … 4 is INVALID_ARGUMENT), and so does the CUDA
   * encoder (AUTO: 0; 1 … 4: INVALID_ARGUMENT). */
  uint8_t table_kind;
  /* Mode 1's low-bit plane (docs/format.md §13.6): 0 = none (default, every stream before it),
   * 1 … 15 = the low k bits of every code packed at k bits per element beside the rANS payload
   * (faster decoding at high rates for a small size cost), SLICER_DENSE_LOW_BITS_AUTO = the
   * encoder rule of §13.6 (0 at low rates). Modes 2 and 3 have none (AUTO gives 0 there; 1 … 15
   * is INVALID_ARGUMENT), and neither does the CUDA encoder (AUTO: 0; 1 … 15: INVALID_ARGUMENT). */
  uint8_t low_bits;
} slicer_dense_params;

/* Header and byte account of a format-2 dense stream (slicer_dense_inspect). */
typedef struct slicer_dense_info {
  uint32_t format_version, mode;
  slicer_dtype dtype;
  uint32_t ndim;
  int64_t shape[SLICER_MAX_NDIM];
  uint64_t num_elements;
  uint32_t layout;
  uint64_t group_count;
  float step;
  uint32_t rho_256;
  int32_t offset1, offset2;
  uint32_t chunk_log2;
  uint32_t has_group_table;
  uint64_t total_bytes, header_bytes, group_table_bytes, freq_table_bytes, chunk_table_bytes,
      raw_bytes, rans_bytes, extra_bits_bytes, checksum_bytes;
  uint64_t coded;   /* elements entropy-coded */
  uint64_t chunks;  /* chunk count */
  uint64_t symbols; /* alphabet size of the table */
  uint64_t zero_groups, raw_groups;
  /* mode 2 (§19): classes 2 … 16 (1 for mode 1), the class axis, the class map's bytes and each
   * table's bytes (freq_table_bytes is their sum; the map is not in it) */
  uint32_t classes, class_axis;
  uint64_t class_map_bytes;
  uint64_t class_table_bytes[16];
  uint32_t class_map_kind; /* mode 2: 0 = §18.1 map bytes, 1 = §18.3 index ranges (no bytes),
                            2 = §18.4 range boundaries (varint gaps) */
  uint64_t class_bounds[15]; /* class_map_kind 2: the K − 1 boundaries b_1 … b_{K−1}, else 0 */
  /* mode 3 (§21): offset1 / offset2 are quantizer Q0's offsets, these Q1's (0 in modes 1-2);
   * classes is 1 … 16 and class_table_bytes[c] the bytes of class c's two tables */
  int32_t trellis_offset1, trellis_offset2;
  uint32_t table_kind; /* §13.5: mode 1's frequency table kind 0 … 4 (0 in modes 2-3) */
  uint32_t low_bits;   /* §13.6: mode 1's low-bit plane width k (0: none; 0 in modes 2-3); the
                          planes' coded·k bits are inside extra_bits_bytes */
} slicer_dense_info;

SLICER_API void slicer_dense_params_init(slicer_dense_params* params);

/* The default chunk_log2 of modes 1 and 2 for an input of n elements (docs/format.md §15.1): 14
 * below 8192 and from 2^18 elements on, between them the cut (13 … 17) the decoders take
 * fastest, so that a small tensor does not end in a slow one-state chunk. Any chunk_log2 in
 * 6 … 24 decodes; slicer_dense_params_init keeps 14. */
SLICER_API uint32_t slicer_dense_auto_chunk_log2(uint64_t n);

/* Upper bound on the dense stream size (§16), from shape, dtype and params only. */
SLICER_API int slicer_dense_encode_bound(const int64_t* shape, uint32_t ndim, int dtype,
                                         const slicer_dense_params* params, size_t* bound);

/* Encode a C-contiguous float32/float16/bfloat16/float64 array as a format-2 dense stream. */
SLICER_API int slicer_dense_encode(const void* data, int dtype, const int64_t* shape,
                                   uint32_t ndim, const slicer_dense_params* params, void* dst,
                                   size_t dst_capacity, size_t* written);

/* slicer_dense_encode, and *sse = the sum over all elements of (x - y)^2 in binary64, where y is
 * exactly what slicer_decode returns for the stream (zero groups 0, raw groups x): the error of
 * the stream without decoding it (a rate control that checks an error bound needs no decode). */
SLICER_API int slicer_dense_encode_sse(const void* data, int dtype, const int64_t* shape,
                                       uint32_t ndim, const slicer_dense_params* params,
                                       void* dst, size_t dst_capacity, size_t* written,
                                       double* sse);

/* slicer_dense_encode on a context (its pool and scratch, one call at a time, as
 * slicer_context_encode): *stream / *size receive the stream, owned by the context until its
 * next call or its destruction. sse: NULL, or receives the squared error as
 * slicer_dense_encode_sse. The same bytes as slicer_dense_encode. Decoding on a context:
 * slicer_context_decode, which reads format 2 too. */
SLICER_API int slicer_context_dense_encode(slicer_context* context, const void* data, int dtype,
                                           const int64_t* shape, uint32_t ndim,
                                           const slicer_dense_params* params,
                                           const uint8_t** stream, size_t* size, double* sse);

/* Rate control of the dense mode (mode="auto" / mode="dense" with max_bytes or rel_error in
 * Python): the lowest-error stream of at most max_bytes bytes, or the smallest stream found whose
 * relative L2 error ||x - y|| / ||x|| is at most rel_error; exactly one of max_bytes > 0 /
 * rel_error > 0 (the other 0), else SLICER_ERR_INVALID_ARGUMENT. params->step is not read; the
 * step comes from the rate model (docs/format.md §15) and up to a few real encodes correct its
 * miss. search_offsets = 1 tries the rounding offsets 128, 96 and 72 / 256 (mode="auto"); 0 keeps
 * params->rho_256. The same stream as the Python driver for the same parameters. Class settings:
 * classes 0 / 1 (mode 1), a fixed K >= 2 with the §18.2 map, §18.3 ranges or given §18.4
 * boundaries, or SLICER_DENSE_CLASSES_AUTO (the search over K, axis and map kind at the chosen
 * step; slicer_dense_inspect tells what was chosen); group tables and mode 3 are Python only
 * (SLICER_ERR_INVALID_ARGUMENT here). table_kind / low_bits: 0 or AUTO with max_bytes (AUTO
 * drops the plane where it would not fit), any with rel_error; the search runs without them and
 * its stream is re-encoded with them at its own step. SLICER_ERR_TARGET_UNREACHABLE: max_bytes
 * is below the smallest stream (*written = that stream's size, the one found) or rel_error cannot
 * be reached (*written = 0). BUFFER_TOO_SMALL: *written = the stream's size. */
SLICER_API int slicer_dense_encode_budget(const void* data, int dtype, const int64_t* shape,
                                          uint32_t ndim, const slicer_dense_params* params,
                                          uint64_t max_bytes, double rel_error, int search_offsets,
                                          void* dst, size_t dst_capacity, size_t* written);

/* slicer_dense_encode_budget on a context (its pool and scratch, one call at a time): *stream /
 * *size receive the stream, owned by the context until its next call or its destruction; on
 * SLICER_ERR_TARGET_UNREACHABLE *size is as *written above. */
SLICER_API int slicer_context_dense_encode_budget(slicer_context* context, const void* data,
                                                  int dtype, const int64_t* shape, uint32_t ndim,
                                                  const slicer_dense_params* params,
                                                  uint64_t max_bytes, double rel_error,
                                                  int search_offsets, const uint8_t** stream,
                                                  size_t* size);

/* Full validation of a format-2 stream plus its byte account. */
SLICER_API int slicer_dense_inspect(const void* src, size_t size, uint64_t max_elements,
                                    slicer_dense_info* info);

/* The format version byte of a stream (1 or 2) after the length, magic and CRC checks. */
SLICER_API int slicer_stream_version(const void* src, size_t size, uint32_t* version);

/* ---------------------------------------------------------------------------------------------
 * Frames for token streams (docs/format.md §17): a context sent once (row shape, dtype, step,
 * offsets, a frequency table that gives every symbol a slot) and one small frame per row
 * (sequence byte, extra-bit length, rANS bytes, extra bits, CRC-32 bound to the context id). */

#define SLICER_FRAME_MAX_ROW (1u << 18)        /* elements per row */
#define SLICER_FRAME_CONTEXT_MAX_BYTES 1536u   /* no plain context without a class map is longer */
/* No context of rows of `row` elements with `classes` ≥ 2 classes (§18) is longer. */
#define SLICER_FRAME_CONTEXT_BOUND(row, classes) (57u + ((row) + 1u) / 2u + 1111u * (classes))
#define SLICER_FRAME_MAX_CLASSES 16u
/* No trellis context (§17.4) of rows of `row` elements with `classes` ≥ 1 classes is longer. */
#define SLICER_FRAME_TRELLIS_CONTEXT_BOUND(row, classes) \
  (62u + ((row) + 1u) / 2u + 2222u * (classes))

typedef struct slicer_frame_params {
  float step;             /* Δ0 (finite, normal, > 0) */
  uint8_t rho_256;        /* rounding offset ρ·256, 1 … 128 */
  uint8_t auto_offsets;   /* 1: o1/o2 by the data rule over the calibration rows (§12.3) */
  int8_t offset1, offset2; /* used when auto_offsets = 0 */
  uint8_t states;         /* interleaved rANS states per frame: 2 (default), 1 (about 3.5 bytes
                             smaller, slower: one serial chain) or 4 (faster, about 7 more) */
  /* Trellis contexts (docs/format.md §17.4): trellis = 1 codes every frame with mode 3's
   * trellis-coded quantization (rho_256 is then unused); trellis_lambda: λ (finite, ≥ 2^−126,
   * stored in the context, default 0.34); with auto_offsets = 0, offset1 / offset2 are
   * quantizer Q0's offsets and trellis_offset1 / trellis_offset2 quantizer Q1's. */
  uint8_t trellis;
  int8_t trellis_offset1, trellis_offset2;
  float trellis_lambda;
} slicer_frame_params;

/* An opened context: the encoder and decoder tables plus scratch. One handle serves one thread
 * at a time (open the same context bytes once per thread for concurrent use). */
typedef struct slicer_frame_context slicer_frame_context;

typedef struct slicer_frame_info {
  slicer_dtype dtype;
  uint32_t ndim;
  int64_t shape[SLICER_MAX_NDIM]; /* the shape of one row */
  uint64_t row_elements;
  float step;
  uint32_t rho_256;
  int32_t offset1, offset2;
  uint32_t states;        /* interleaved rANS states per frame */
  uint32_t context_id;    /* CRC-32 of the context bytes */
  uint64_t context_bytes; /* length of the context */
  uint64_t frame_bound;   /* no frame of this context is longer */
  uint32_t trellis;       /* 1: a trellis context (§17.4; rho_256 is then 0) */
  int32_t trellis_offset1, trellis_offset2; /* quantizer Q1's offsets (trellis contexts) */
  float trellis_lambda;   /* the context's λ (trellis contexts), else 0 */
} slicer_frame_info;

SLICER_API void slicer_frame_params_init(slicer_frame_params* params);

/* Builds context bytes (§17.3) from num_rows ≥ 1 calibration rows of row_shape, C-contiguous,
 * of dtype (also the dtype of every frame). dst_capacity ≥ SLICER_FRAME_CONTEXT_MAX_BYTES is
 * always enough for a plain context; a trellis context (params.trellis = 1, §17.4) needs
 * SLICER_FRAME_TRELLIS_CONTEXT_BOUND(row elements, 1). */
SLICER_API int slicer_frame_context_build(const void* rows, int dtype, uint64_t num_rows,
                                          const int64_t* row_shape, uint32_t row_ndim,
                                          const slicer_frame_params* params, void* dst,
                                          size_t dst_capacity, size_t* written);

/* slicer_frame_context_build with a class map (docs/format.md §18): classes = 1 is exactly
 * slicer_frame_context_build; 2 … min(16, row elements) groups the row positions into that many
 * classes by their calibration magnitudes, each with its own frequency table (smaller frames
 * when positions differ in spread: channels of LLM states, components of a transform).
 * dst_capacity ≥ SLICER_FRAME_CONTEXT_BOUND(row elements, classes) is always enough
 * (SLICER_FRAME_TRELLIS_CONTEXT_BOUND for a trellis context). */
SLICER_API int slicer_frame_context_build_classes(const void* rows, int dtype, uint64_t num_rows,
                                                  const int64_t* row_shape, uint32_t row_ndim,
                                                  const slicer_frame_params* params,
                                                  uint32_t classes, void* dst,
                                                  size_t dst_capacity, size_t* written);

/* Validates context bytes (§17.1; a row above max_elements is LIMIT_EXCEEDED) and opens them. */
SLICER_API int slicer_frame_context_open(const void* src, size_t size, uint64_t max_elements,
                                         slicer_frame_context** context);
SLICER_API void slicer_frame_context_free(slicer_frame_context* context);
SLICER_API int slicer_frame_context_info(const slicer_frame_context* context,
                                         slicer_frame_info* info);
/* The number of classes of an opened context: 1 without a class map, else 2 … 16. */
SLICER_API int slicer_frame_context_classes(const slicer_frame_context* context,
                                            uint32_t* classes);

/* Encodes one row (row_bytes = row_elements · itemsize of the context dtype) with sequence
 * number seq (mod 256). dst_capacity ≥ info.frame_bound is always enough. */
SLICER_API int slicer_frame_encode(slicer_frame_context* context, const void* row,
                                   size_t row_bytes, uint32_t seq, void* dst, size_t dst_capacity,
                                   size_t* written);

/* Validates and decodes one frame into dst (dst_bytes = row_elements · itemsize); *seq receives
 * its sequence number (may be NULL). A damaged frame or a frame of another context is an error
 * (BAD_CHECKSUM / CORRUPT / TRUNCATED); dst is then unspecified. */
SLICER_API int slicer_frame_decode(slicer_frame_context* context, const void* frame, size_t size,
                                   void* dst, size_t dst_bytes, uint32_t* seq);

#ifdef __cplusplus
}
#endif
#endif /* SLICER_SLICER_H_ */
