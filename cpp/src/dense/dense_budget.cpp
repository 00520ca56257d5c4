// The budget driver (dense_budget.hpp): python/slicer/_rate.py's dense_for_budget /
// dense_for_error on the rate model kernel (rate_model.hpp). Every floating-point step follows
// the Python driver's order (binary64, -ffp-contract=off); 2^x is libm's pow, as CPython's
// float power (the Python driver takes 2^x of Python floats for that reason), log2 is libm's.
#include "dense/dense_budget.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <list>
#include <mutex>
#include <utility>

#include "dense/rate_model.hpp"
#include "format/class_map.hpp"
#include "varint.hpp"

namespace slicer::dense {
namespace {

using u128 = unsigned __int128;

constexpr size_t kSample = size_t{1} << 15;  // _SAMPLE
constexpr int kRhoCandidates[3] = {128, 96, 72};

// ------------------------------------------------------------------ NumPy's default_rng(seed)

// SeedSequence(entropy).generate_state(4, uint64) for one 32-bit entropy word (pool size 4).
void SeedState(uint32_t entropy, uint64_t out[4]) {
  constexpr uint32_t kInitA = 0x43b0d7e5, kMultA = 0x931e8875, kInitB = 0x8b51f9dd,
                     kMultB = 0x58f38ded, kMixL = 0xca01f9dd, kMixR = 0x4973f715;
  uint32_t hash_const = kInitA;
  auto hashmix = [&](uint32_t value) {
    value ^= hash_const;
    hash_const *= kMultA;
    value *= hash_const;
    value ^= value >> 16;
    return value;
  };
  auto mix = [](uint32_t x, uint32_t y) {
    uint32_t r = kMixL * x - kMixR * y;
    return r ^ (r >> 16);
  };
  uint32_t pool[4];
  for (int i = 0; i < 4; ++i) pool[i] = hashmix(i == 0 ? entropy : 0u);
  for (int src = 0; src < 4; ++src) {
    for (int dst = 0; dst < 4; ++dst) {
      if (src != dst) pool[dst] = mix(pool[dst], hashmix(pool[src]));
    }
  }
  uint32_t words[8];
  hash_const = kInitB;
  for (int i = 0; i < 8; ++i) {
    uint32_t v = pool[i % 4];
    v ^= hash_const;
    hash_const *= kMultB;
    v *= hash_const;
    v ^= v >> 16;
    words[i] = v;
  }
  for (int i = 0; i < 4; ++i) out[i] = uint64_t{words[2 * i]} | (uint64_t{words[2 * i + 1]} << 32);
}

// NumPy's PCG64: 128-bit LCG, XSL-RR output of the stepped state; next32 halves a next64.
class Pcg64 {
 public:
  explicit Pcg64(uint32_t seed) {
    uint64_t s[4];
    SeedState(seed, s);
    const u128 initstate = (u128{s[0]} << 64) | s[1];
    const u128 initseq = (u128{s[2]} << 64) | s[3];
    state_ = 0;
    inc_ = (initseq << 1) | 1u;
    Step();
    state_ += initstate;
    Step();
  }
  uint64_t Next64() {
    Step();
    const uint64_t x = static_cast<uint64_t>(state_ >> 64) ^ static_cast<uint64_t>(state_);
    const unsigned rot = static_cast<unsigned>(state_ >> 122);
    return (x >> rot) | (x << ((64 - rot) & 63));
  }
  uint32_t Next32() {
    if (has32_) {
      has32_ = false;
      return buffered_;
    }
    const uint64_t v = Next64();
    has32_ = true;
    buffered_ = static_cast<uint32_t>(v >> 32);
    return static_cast<uint32_t>(v);
  }

 private:
  void Step() {
    const u128 mult = (u128{2549297995355413924ull} << 64) | 4865540595714422341ull;
    state_ = state_ * mult + inc_;
  }
  u128 state_, inc_;
  bool has32_ = false;
  uint32_t buffered_ = 0;
};

// Generator.integers(0, n, count) (int64): random_bounded_uint64_fill with rng = n − 1.
std::vector<int64_t> Integers(Pcg64& gen, uint64_t n, size_t count) {
  std::vector<int64_t> out(count);
  const uint64_t rng = n - 1;
  for (size_t i = 0; i < count; ++i) {
    uint64_t v;
    if (rng == 0) {
      v = 0;
    } else if (rng <= 0xFFFFFFFFull) {
      if (rng == 0xFFFFFFFFull) {
        v = gen.Next32();
      } else {
        const uint32_t excl = static_cast<uint32_t>(rng) + 1;
        uint64_t m = uint64_t{gen.Next32()} * excl;
        uint32_t left = static_cast<uint32_t>(m);
        if (left < excl) {
          const uint32_t threshold = (UINT32_MAX - static_cast<uint32_t>(rng)) % excl;
          while (left < threshold) {
            m = uint64_t{gen.Next32()} * excl;
            left = static_cast<uint32_t>(m);
          }
        }
        v = m >> 32;
      }
    } else if (rng == UINT64_MAX) {
      v = gen.Next64();
    } else {
      const uint64_t excl = rng + 1;
      u128 m = u128{gen.Next64()} * excl;
      uint64_t left = static_cast<uint64_t>(m);
      if (left < excl) {
        const uint64_t threshold = (UINT64_MAX - rng) % excl;
        while (left < threshold) {
          m = u128{gen.Next64()} * excl;
          left = static_cast<uint64_t>(m);
        }
      }
      v = static_cast<uint64_t>(m >> 64);
    }
    out[i] = static_cast<int64_t>(v);
  }
  return out;
}

// ------------------------------------------------------------------ the driver's pieces

bool AllFinite(const uint8_t* data, int dtype, uint64_t n) {
  uint32_t bad = 0;  // OR of 0 / 1 flags, branchless (vectorised)
  if (dtype == SLICER_FLOAT32) {
    for (uint64_t i = 0; i < n; ++i) {
      uint32_t b;
      std::memcpy(&b, data + 4 * i, 4);
      bad |= static_cast<uint32_t>((b & 0x7F800000u) == 0x7F800000u);
    }
  } else if (dtype == SLICER_FLOAT64) {
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t b;
      std::memcpy(&b, data + 8 * i, 8);
      bad |= static_cast<uint32_t>((b & 0x7FF0000000000000ull) == 0x7FF0000000000000ull);
    }
  } else {
    const uint16_t mask = dtype == SLICER_FLOAT16 ? 0x7C00 : 0x7F80;
    for (uint64_t i = 0; i < n; ++i) {
      uint16_t b;
      std::memcpy(&b, data + 2 * i, 2);
      bad |= static_cast<uint32_t>((b & mask) == mask);
    }
  }
  return bad == 0;
}

// _dense_header_bytes
double HeaderBytes(const int64_t* shape, uint32_t ndim) {
  uint64_t total = 8 + 2 + 1 + 9;
  for (uint32_t i = 0; i < ndim; ++i) {
    total += internal::VarintLength(static_cast<uint64_t>(shape[i]));
  }
  return static_cast<double>(total);
}

double Pow2(double x) { return std::pow(2.0, x); }

struct Driver {
  const rate::Model& model;
  double max_abs;

  double MinStep() const { return std::max(std::ldexp(1.0, -126), max_abs / std::ldexp(1.0, 50)); }
  std::pair<double, double> StepRange(double top) const {
    return {std::log2(MinStep()), std::log2(std::max(max_abs, std::ldexp(1.0, -100))) + top};
  }
  double Predict(double step, int rho, double* sse = nullptr) const {
    const double r = rho;
    double size = 0, e = 0;
    model.Predict(&step, &r, 1, &size, &e);
    if (sse) *sse = e;
    return size;
  }
  // _bisect_step: per offset, the smallest step whose predicted size is <= limit
  std::vector<double> BisectStep(const std::vector<int>& rhos, double limit, double near) const {
    auto [lo, hi] = StepRange(2.0);
    if (near > 0) {
      const double c = std::log2(near);
      const bool f0 = Predict(Pow2(c - 1.0), rhos[0]) <= limit;
      const bool f1 = Predict(Pow2(c + 1.0), rhos[0]) <= limit;
      if (!f0 && f1) lo = c - 1.0, hi = c + 1.0;
    }
    std::vector<double> out = model.Boundary(rhos, lo, hi, true, limit, true);
    for (double& v : out) v = Pow2(v);
    return out;
  }
  // _largest_step: per offset, the largest step whose predicted squared error is <= goal
  std::vector<double> LargestStep(const std::vector<int>& rhos, double goal) const {
    auto [lo, hi] = StepRange(4.0);
    std::vector<double> out = model.Boundary(rhos, lo, hi, false, goal, false);
    for (double& v : out) v = Pow2(v);
    return out;
  }
};

// _map_bytes: a class map's bytes (kind 0 §18.1 nibbles, 1 §18.3 none, 2 §18.4 at least K − 1)
int64_t MapBytes(int kind, uint64_t length, int k) {
  if (kind == 2) return k - 1;
  return kind == 1 ? 0 : static_cast<int64_t>((length + 1) / 2);
}

// The class setting _resolve_classes decides (written into the encodes' parameters) and its
// predicted saving against one table.
struct Classes {
  int k = 1;
  uint8_t class_axis = 0;        // the axis bit and the map kind's flag
  std::vector<uint64_t> bounds;  // §18.4: the K − 1 boundaries
  double saving = 0.0;
};

class ClassResolver {
 public:
  ClassResolver(const rate::Model& model, double max_abs, const int64_t* positions,
                const uint8_t* data, int dtype, const int64_t* shape, uint32_t ndim, uint64_t n)
      : model_(model), max_abs_(max_abs), positions_(positions), data_(data), dtype_(dtype),
        shape_(shape), ndim_(ndim), n_(n) {}

  // _resolve_classes of `params` (classes 2 … 16 or SLICER_DENSE_CLASSES_AUTO) at (step, rho)
  Classes Resolve(const slicer_dense_params& params, double step, int rho) const {
    Classes fixed;  // a fixed K: the setting as given
    fixed.k = params.classes;
    fixed.class_axis = params.class_axis;
    if (params.class_bounds) {
      fixed.bounds.assign(params.class_bounds, params.class_bounds + params.class_bounds_count);
    }
    const bool automatic = params.classes == SLICER_DENSE_CLASSES_AUTO;
    Classes one;  // classes=1, class_map None
    one.class_axis = params.class_axis & format::kClassAxisBit;
    if (n_ == 0) return one;
    // codes near or past the §12.2 limit of 2^53: no estimate
    if (!(max_abs_ / step < std::ldexp(1.0, 52))) return automatic ? one : fixed;
    if (!automatic) {
      fixed.saving = (params.class_axis & SLICER_DENSE_CLASS_MAP_BOUNDS)
                         ? GivenBoundsSaving(params, step, rho)
                         : Search(params, step, rho).saving;
      return fixed;
    }
    return Search(params, step, rho);
  }

 private:
  uint64_t Length(int axis) const {  // class_length (0 when the shape lacks the axis)
    if (axis == 0) return ndim_ >= 1 ? static_cast<uint64_t>(shape_[ndim_ - 1]) : 0;
    return ndim_ >= 2 ? static_cast<uint64_t>(shape_[1]) : 0;
  }

  // _class_plans (the K that can pay) as the kernel's plans (_class_search_args), with each
  // plan's axis
  std::vector<rate::ClassPlan> Plans(const std::vector<int>& axes, const std::vector<int>& ks,
                                     const std::vector<int>& kinds, std::vector<int>* plan_axes)
      const {
    std::vector<rate::ClassPlan> plans;
    for (int axis : axes) {
      const uint64_t length = Length(axis);
      for (int kind : kinds) {
        std::vector<int> useful;
        for (int k : ks) {
          if (k > 1 && static_cast<uint64_t>(k) <= length &&
              static_cast<double>(2 + MapBytes(kind, length, k)) <
                  static_cast<double>(n_) * std::log2(static_cast<double>(k)) / 8.0) {
            useful.push_back(k);
          }
        }
        if (useful.empty()) continue;
        rate::ClassPlan plan;
        plan.kind = kind;
        plan.length = length;
        if (axis == 0) {
          plan.outer = n_ / length, plan.inner = 1;
        } else {
          plan.outer = static_cast<uint64_t>(shape_[0]);
          plan.inner = n_ / (plan.outer * length);
        }
        plan.ks = std::move(useful);
        plan.map_bytes = kind == 2 ? 0 : MapBytes(kind, length, 2);
        plans.push_back(std::move(plan));
        plan_axes->push_back(axis);
      }
    }
    return plans;
  }

  // _class_saving through the fused kernel search (_kernel_class_search): classes="auto" over
  // _class_axes × the map kinds × class_candidates, or a fixed K with the §18.2 map / §18.3
  // ranges on its own axis
  Classes Search(const slicer_dense_params& params, double step, int rho) const {
    Classes out;
    const int axis = params.class_axis & format::kClassAxisBit;
    out.class_axis = static_cast<uint8_t>(axis);
    std::vector<int> axes{axis}, ks, kinds;
    const bool automatic = params.classes == SLICER_DENSE_CLASSES_AUTO;
    const uint8_t flags = params.class_axis & ~format::kClassAxisBit;
    if (automatic) {
      if (ndim_ >= 3) axes.push_back(1 - axis);  // _class_axes
      // class_candidates of each axis, their union in ascending order
      for (int k : {2, 4, 8, 16}) {
        for (int a : axes) {
          if (static_cast<uint64_t>(k) <= Length(a)) {
            ks.push_back(k);
            break;
          }
        }
      }
      if (ks.empty()) return out;
      if (flags == SLICER_DENSE_CLASS_MAP_RANGES) {
        kinds = {1};
      } else if (flags == SLICER_DENSE_CLASS_MAP_BOUNDS) {
        kinds = {2};
      } else if (flags == SLICER_DENSE_CLASS_MAP_RANK) {
        kinds = {0};
      } else {
        kinds = {0, 1, 2};
      }
    } else {
      ks = {params.classes};
      kinds = {(flags & SLICER_DENSE_CLASS_MAP_RANGES) ? 1 : 0};
    }
    std::vector<int> plan_axes;
    const std::vector<rate::ClassPlan> plans = Plans(axes, ks, kinds, &plan_axes);
    if (plans.empty()) return out;  // no plan can pay
    const rate::ClassChoice choice =
        rate::ClassSearch(model_, positions_, data_, dtype_, step, rho, plans);
    if (choice.k == 1) return out;
    const int kind = plans[choice.plan].kind;
    out.k = choice.k;
    out.class_axis = static_cast<uint8_t>(
        plan_axes[choice.plan] | (kind == 1   ? SLICER_DENSE_CLASS_MAP_RANGES
                                  : kind == 2 ? SLICER_DENSE_CLASS_MAP_BOUNDS
                                              : 0));
    if (kind == 2) out.bounds.assign(choice.bounds.begin(), choice.bounds.end());
    out.saving = choice.saving;
    return out;
  }

  // _class_saving of a fixed K with §18.4 boundaries given (the composition of the kernel's
  // pieces: symbols, one histogram, the histograms by class of the boundaries)
  double GivenBoundsSaving(const slicer_dense_params& params, double step, int rho) const {
    const int axis = params.class_axis & format::kClassAxisBit;
    const uint64_t length = Length(axis);
    const int k = params.classes;
    std::vector<int> plan_axes;
    if (Plans({axis}, {k}, {2}, &plan_axes).empty()) return 0.0;
    const double scale = model_.scale();
    const std::vector<int32_t> sym = model_.Symbols(step, rho);
    const size_t count = sym.size();
    std::vector<int64_t> cls(count, 0);
    int64_t tables = 0;
    double bits = rate::HistogramBits(rate::ClassHistogram(sym.data(), cls.data(), count, 1).data(),
                                      1, &tables);
    const double base = bits * scale / 8.0 * 1.002 + static_cast<double>(tables);
    uint64_t inner = 1;
    if (axis != 0) {
      for (uint32_t i = 2; i < ndim_; ++i) inner *= static_cast<uint64_t>(shape_[i]);
      inner = std::max<uint64_t>(inner, 1);
    }
    const uint64_t* b = params.class_bounds;
    const uint32_t nb = params.class_bounds_count;
    int64_t bounds_bytes = 0;  // _bounds_bytes
    for (uint32_t j = 0; j < nb; ++j) {
      bounds_bytes += internal::VarintLength(b[j] - (j ? b[j - 1] : 0));
    }
    for (size_t i = 0; i < count; ++i) {  // _sample_positions_along, searchsorted(side=right)
      const uint64_t flat = positions_ ? static_cast<uint64_t>(positions_[i]) : i;
      const uint64_t pos = (flat / inner) % length;
      cls[i] = std::upper_bound(b, b + nb, pos) - b;
    }
    tables = 0;
    bits = rate::HistogramBits(rate::ClassHistogram(sym.data(), cls.data(), count, k).data(), k,
                               &tables);
    const double est = bits * scale / 8.0 * 1.002 + static_cast<double>(tables) +
                       static_cast<double>(bounds_bytes);
    const double cost = est + 2;
    return base - cost > 0.0 ? base - cost : 0.0;
  }

  const rate::Model& model_;
  double max_abs_;
  const int64_t* positions_;
  const uint8_t* data_;
  int dtype_;
  const int64_t* shape_;
  uint32_t ndim_;
  uint64_t n_;
};

// mode 1 streams get params' table kind / low-bit plane at their own step, offsets and chunk
// size (_with_table_kind of python/slicer/_api.py): the search runs without them.
int Finish(const slicer_dense_params& params, uint64_t max_bytes, const BudgetEncoder& encode,
           BudgetResult* result) {
  if (!params.table_kind && !params.low_bits) return SLICER_OK;
  slicer_dense_info info;
  int st = slicer_dense_inspect(result->data, result->size, UINT64_MAX, &info);
  if (st != SLICER_OK) return SLICER_ERR_INTERNAL;
  if (info.mode != 1) return SLICER_OK;
  slicer_dense_params again = params;
  again.step = info.step;
  again.rho_256 = static_cast<uint8_t>(info.rho_256);
  again.auto_offsets = 0;
  again.offset1 = static_cast<int8_t>(info.offset1);
  again.offset2 = static_cast<int8_t>(info.offset2);
  again.chunk_log2 = static_cast<uint8_t>(info.chunk_log2);
  again.classes = 1;
  again.class_axis &= format::kClassAxisBit;
  again.class_bounds = nullptr;
  again.class_bounds_count = 0;
  // the search's stream, kept in case the plane is dropped and no kind is asked for
  std::vector<uint8_t> searched(result->data, result->data + result->size);
  const uint8_t* out = nullptr;
  size_t size = 0;
  st = encode(again, &out, &size, nullptr);
  if (st != SLICER_OK) return st;
  if (params.low_bits && max_bytes && size > max_bytes) {  // "auto": the plane would not fit
    if (!params.table_kind) {
      result->copy.swap(searched);
      result->data = result->copy.data(), result->size = result->copy.size();
      return SLICER_OK;
    }
    again.low_bits = 0;
    st = encode(again, &out, &size, nullptr);
    if (st != SLICER_OK) return st;
  }
  result->data = out, result->size = size;
  return SLICER_OK;
}

}  // namespace

std::shared_ptr<const std::vector<int64_t>> SamplePositions(uint64_t n) {
  static std::mutex lock;
  static std::list<std::pair<uint64_t, std::shared_ptr<const std::vector<int64_t>>>> cache;
  {
    std::lock_guard<std::mutex> hold(lock);
    for (auto it = cache.begin(); it != cache.end(); ++it) {
      if (it->first == n) {
        cache.splice(cache.begin(), cache, it);
        return cache.front().second;
      }
    }
  }
  Pcg64 gen(0x51C3);
  auto out = std::make_shared<std::vector<int64_t>>(Integers(gen, n, kSample));
  std::sort(out->begin(), out->end());
  std::lock_guard<std::mutex> hold(lock);
  cache.emplace_front(n, out);
  if (cache.size() > 16) cache.pop_back();
  return out;
}

BudgetResult EncodeForBudget(const void* data_in, int dtype, const int64_t* shape, uint32_t ndim,
                             const slicer_dense_params& params, uint64_t max_bytes,
                             double rel_error, bool search_offsets, const BudgetEncoder& encode,
                             bool check_finite) {
  BudgetResult result;
  auto fail = [&](int status) {
    result.status = status;
    result.data = nullptr, result.size = 0;
    result.copy.clear();
    return result;
  };
  const auto* data = static_cast<const uint8_t*>(data_in);
  const bool by_size = max_bytes > 0;
  if (by_size == (rel_error > 0) || !(rel_error >= 0 && std::isfinite(rel_error))) {
    return fail(SLICER_ERR_INVALID_ARGUMENT);  // exactly one target
  }
  if (dtype < SLICER_FLOAT32 || dtype > SLICER_FLOAT64) return fail(SLICER_ERR_UNSUPPORTED_DTYPE);
  if ((shape == nullptr && ndim > 0) || ndim > SLICER_MAX_NDIM) {
    return fail(SLICER_ERR_INVALID_ARGUMENT);
  }
  uint64_t n = 1;
  for (uint32_t i = 0; i < ndim; ++i) {
    if (shape[i] < 0) return fail(SLICER_ERR_INVALID_ARGUMENT);
    n *= static_cast<uint64_t>(shape[i]);
  }
  if (n > 0 && data == nullptr) return fail(SLICER_ERR_INVALID_ARGUMENT);
  // the class settings of this driver (dense_budget.hpp); a table kind or plane other than
  // 0 / auto may not fit a byte budget (Python's rule)
  const bool automatic = params.classes == SLICER_DENSE_CLASSES_AUTO;
  const uint8_t flags = params.class_axis & ~format::kClassAxisBit;
  const bool bounds = (flags & SLICER_DENSE_CLASS_MAP_BOUNDS) != 0;
  bool classes_ok;
  if (automatic) {  // one map kind flag at most, no boundaries (they are estimated)
    classes_ok = (flags == 0 || flags == SLICER_DENSE_CLASS_MAP_RANK ||
                  flags == SLICER_DENSE_CLASS_MAP_RANGES ||
                  flags == SLICER_DENSE_CLASS_MAP_BOUNDS) &&
                 params.class_bounds == nullptr && params.class_bounds_count == 0;
  } else if (params.classes >= 2) {
    classes_ok = params.classes <= SLICER_DENSE_MAX_CLASSES &&
                 (flags & SLICER_DENSE_CLASS_MAP_RANK) == 0 && ndim >= 1 &&
                 !((params.class_axis & 1) && ndim < 2) &&
                 (!bounds || (params.class_bounds != nullptr &&
                              params.class_bounds_count == params.classes - 1u));
  } else {
    classes_ok = (flags & SLICER_DENSE_CLASS_MAP_RANK) == 0;
  }
  if (params.trellis || params.group_table != nullptr || !classes_ok ||
      (by_size && ((params.table_kind && params.table_kind != SLICER_DENSE_TABLE_AUTO) ||
                   (params.low_bits && params.low_bits != SLICER_DENSE_LOW_BITS_AUTO)))) {
    return fail(SLICER_ERR_INVALID_ARGUMENT);
  }
  if (!search_offsets && (params.rho_256 < 1 || params.rho_256 > 128)) {
    return fail(SLICER_ERR_INVALID_ARGUMENT);
  }
  if (check_finite && n > 0 && !AllFinite(data, dtype, n)) {
    return fail(SLICER_ERR_NONFINITE_INPUT);
  }

  // the model (_new_model / KernelModel): the sample at _sample_positions(n) beyond 2^15
  std::shared_ptr<const std::vector<int64_t>> positions;
  if (n > kSample) positions = SamplePositions(n);
  const int64_t* pos = positions ? positions->data() : nullptr;
  rate::FirstPass pass =
      rate::ReadInput(data, dtype, n, pos, positions ? positions->size() : 0, !by_size);
  const double max_abs = pass.max_abs, energy = pass.energy;
  // The model's buffers (about 1.5 MB for a 2^15 sample) are freed one call late, when the
  // next call's model exists: freed at once they left the top of the heap free, glibc trimmed
  // it, and the next call (and the encodes after it) faulted the pages in again (measured:
  // +20 000 minor faults and +15 % CPU per plain encode in bench/auto_cost.py at 131k).
  thread_local std::unique_ptr<const rate::Model> previous;
  auto owned =
      std::make_unique<const rate::Model>(std::move(pass.sample), n, HeaderBytes(shape, ndim));
  const rate::Model& model = *owned;
  struct Keep {
    std::unique_ptr<const rate::Model>& slot;
    std::unique_ptr<const rate::Model>& model;
    ~Keep() { slot = std::move(model); }
  } keep{previous, owned};
  const Driver drive{model, max_abs};

  std::vector<int> rhos;
  if (search_offsets) {
    rhos.assign(std::begin(kRhoCandidates), std::end(kRhoCandidates));
  } else {
    rhos.push_back(params.rho_256);
  }
  slicer_dense_params call = params;  // the search: kind 0, no plane
  call.table_kind = 0;
  call.low_bits = 0;
  // the class setting of the encodes: mode 1 (Python's classes=1, class_map None) until
  // _resolve_classes decides (classes "auto", or a fixed K >= 2 kept as given)
  Classes chosen;
  auto use = [&](Classes resolved) {
    chosen = std::move(resolved);
    call.classes = static_cast<uint8_t>(chosen.k);
    call.class_axis = chosen.class_axis;
    call.class_bounds = chosen.bounds.empty() ? nullptr : chosen.bounds.data();
    call.class_bounds_count = static_cast<uint32_t>(chosen.bounds.size());
  };
  {
    Classes initial;
    initial.class_axis = params.class_axis & format::kClassAxisBit;
    if (params.classes >= 2 && !automatic) {
      initial.k = params.classes;
      initial.class_axis = params.class_axis;
      if (params.class_bounds) {
        initial.bounds.assign(params.class_bounds,
                              params.class_bounds + params.class_bounds_count);
      }
    }
    use(std::move(initial));
  }
  const ClassResolver classes(model, max_abs, pos, data, dtype, shape, ndim, n);
  const bool resolve = automatic || params.classes >= 2;
  auto encode_at = [&](double step, int rho, const uint8_t** out, size_t* size, double* sse) {
    call.step = static_cast<float>(step);
    call.rho_256 = static_cast<uint8_t>(rho);
    const int st = encode(call, out, size, sse);
    if (st != SLICER_OK) result.step = call.step;
    return st;
  };

  if (by_size) {  // dense_for_budget
    const double limit = static_cast<double>(max_bytes);
    const std::vector<double> steps = drive.BisectStep(rhos, limit, 0.0);
    double best_sse = 0, step = 0;
    int rho = 0;
    for (size_t i = 0; i < rhos.size(); ++i) {
      double sse;
      drive.Predict(steps[i], rhos[i], &sse);
      if (i == 0 || sse < best_sse) best_sse = sse, step = steps[i], rho = rhos[i];
    }
    // classes (§19): K and axis at this step; their predicted saving lets a smaller step fit
    if (resolve) use(classes.Resolve(params, step, rho));
    if (call.classes > 1) {
      const double saving = chosen.saving;
      if (saving > 0) {
        const double goal = limit + saving - 0.004 * limit;
        step = drive.BisectStep({rho}, goal, step)[0];
      }
    }
    // the largest stream found so far that fits (lowest error): the last encode's output
    // while `fit_is_last`, copied out before the next encode overwrites it
    bool have = false, fit_is_last = false;
    const uint8_t* out = nullptr;
    size_t size = 0;
    for (int attempt = 0; attempt < 3; ++attempt) {
      if (fit_is_last) {
        result.copy.assign(result.data, result.data + result.size);
        result.data = result.copy.data();
        fit_is_last = false;
      }
      const int st = encode_at(step, rho, &out, &size, nullptr);
      if (st != SLICER_OK) return fail(st);
      if (size <= max_bytes && (!have || size > result.size)) {
        result.data = out, result.size = size;
        have = fit_is_last = true;
      }
      if (size <= max_bytes && (static_cast<double>(size) >= 0.99 * limit || attempt == 2)) {
        break;
      }
      const double goal =
          limit - (static_cast<double>(size) - drive.Predict(step, rho)) - 0.001 * limit;
      step = drive.BisectStep({rho}, goal, step)[0];
    }
    if (!have) {  // rare: the model is far off; grow the step until it fits
      while (size > max_bytes) {
        step *= 1.25;
        if (step > std::ldexp(1.0, 127)) break;
        const int st = encode_at(step, rho, &out, &size, nullptr);
        if (st != SLICER_OK) return fail(st);
      }
      if (size > max_bytes) {
        result.smallest = size;
        return fail(SLICER_ERR_TARGET_UNREACHABLE);
      }
      result.data = out, result.size = size;
    }
  } else {  // dense_for_error
    const uint8_t* out = nullptr;
    size_t size = 0;
    double sse = 0;
    if (energy == 0.0) {
      const int st = encode_at(1.0, call.rho_256, &out, &size, nullptr);
      if (st != SLICER_OK) return fail(st);
      result.data = out, result.size = size;
    } else {
      const double goal = std::pow(rel_error, 2.0) * energy;
      const std::vector<double> steps = drive.LargestStep(rhos, goal * 0.97);
      double best_size = 0, step = 0;
      int rho = 0;
      for (size_t i = 0; i < rhos.size(); ++i) {
        const double s = drive.Predict(steps[i], rhos[i]);
        if (i == 0 || s < best_size) best_size = s, step = steps[i], rho = rhos[i];
      }
      if (resolve) use(classes.Resolve(params, step, rho));  // the size depends on K
      auto attempt = [&](double at, double* err) {
        const int st = encode_at(at, rho, &out, &size, &sse);
        *err = std::sqrt(sse / energy);
        return st;
      };
      bool done = false;
      double err = 0;
      for (int i = 0; i < 3 && !done; ++i) {
        const int st = attempt(step, &err);
        if (st != SLICER_OK) return fail(st);
        if (err <= rel_error) {
          done = true;
          break;
        }
        step = std::max(drive.MinStep(), step * std::min(0.97, rel_error / err * 0.98));
      }
      while (!done) {  // rare: keep shrinking
        step = std::max(drive.MinStep(), step * 0.8);
        const int st = attempt(step, &err);
        if (st != SLICER_OK) return fail(st);
        if (err <= rel_error) break;
        if (step <= drive.MinStep()) return fail(SLICER_ERR_TARGET_UNREACHABLE);
      }
      result.data = out, result.size = size;
    }
  }
  const int st = Finish(params, max_bytes, encode, &result);
  if (st != SLICER_OK) return fail(st);
  return result;
}

}  // namespace slicer::dense
