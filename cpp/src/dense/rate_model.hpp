// The rate model of mode="auto" (python/slicer/_rate.py, docs/format.md §15 / §19.4) as a
// kernel: the NumPy model there (DenseModel, _boundary, _class_saving, _best_bounds) is its
// reference, and this file computes the same counts, histograms and choices without a Python
// or NumPy call per step. Internal: the rate-control policy (the number of encodes, the
// correction of the model's miss) is python/slicer/_rate.py's, and dense_budget.cpp's (the same
// policy in C++ behind slicer_dense_encode_budget, classes="auto" included), so nothing here is
// part of the C ABI.
//
// Arithmetic: binary64, every operation rounded on its own (-ffp-contract=off). Counts and
// histograms are exact integers; sums of logarithms are taken in a fixed order, so they may
// differ from NumPy's pairwise / SIMD sums in the last bits (the tests bound that).
#ifndef SLICER_SRC_DENSE_RATE_MODEL_HPP_
#define SLICER_SRC_DENSE_RATE_MODEL_HPP_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "codec.hpp"

namespace slicer::rate {

// Buffers written in full right after a resize (the sorted sides, their prefix sums, the sort's
// keys) skip the zero fill of std::vector's resize.
template <typename T>
using NoInit = internal::UninitializedAllocator<T>;
using Doubles = std::vector<double, NoInit<double>>;

constexpr int kBins = 212;       // §11 magnitude bins
constexpr int kSymbols = 423;    // §11 symbols: 0, then (positive, negative) per bin 1..211
constexpr int kBoundsGrid = 64;  // classes="auto": §18.4 boundaries on multiples of ceil(L / 64)

// Element i of a C-contiguous buffer of slicer_dtype `dtype` (1 float32, 2 float16,
// 3 bfloat16, 4 float64), widened exactly to binary64.
double ElementAt(const uint8_t* data, int dtype, uint64_t i);

// out[i] = element positions[i] (element i when `positions` is null), widened, i < count.
void Gather(const uint8_t* data, int dtype, const int64_t* positions, size_t count, double* out);

// One pass over the input for what the model needs of it: max |x| (exact), the sample
// (`positions`: ascending, repeats allowed, each < n; null: every element) and Σ x² when
// `energy` is asked for (the same partial sums as Energy). (The position scores stay a pass of
// their own: folded in here they cost more than their separate pass, measured.)
struct FirstPass {
  double max_abs = 0.0;
  double energy = 0.0;
  std::vector<double> sample;
};
FirstPass ReadInput(const uint8_t* data, int dtype, uint64_t n, const int64_t* positions,
                    size_t count, bool energy);

// max |x| over all n elements (0 for n = 0).
double MaxAbs(const uint8_t* data, int dtype, uint64_t n);

// Σ x² in binary64, summed in order.
double Energy(const uint8_t* data, int dtype, uint64_t n);

// Σ |x| per position along a class axis: the input viewed as (outer, length, inner), positions
// along the middle axis (axis 0 of a row layout: outer = n / length, inner = 1). Rows are
// added in order, so the result is NumPy's `np.abs(x).sum(axis=…, dtype=float64)` for inner = 1.
std::vector<double> PositionScores(const uint8_t* data, int dtype, uint64_t outer, uint64_t length,
                                   uint64_t inner);

// Sorted magnitudes of the sample's positive and negative values with prefix sums of x and x²
// (the NumPy model's _Part), and the predictions built on them.
class Model {
 public:
  // `sample`: the sample's values (binary64); `n` the input's element count (scale = n /
  // sample size); `header_bytes` the predicted header (without tables).
  Model(std::vector<double> sample, uint64_t n, double header_bytes);

  // Predicted (bytes, squared error) of each (steps[i], rho_256[i] / 256).
  void Predict(const double* steps, const double* rho_256, size_t count, double* size,
               double* sse) const;

  // Per rounding offset, the log2 step at the boundary of the monotone predicate
  // `value <= threshold` (value: the predicted size when `on_size`, else the squared error) in
  // [lo, hi]: _boundary of the NumPy model, the same grids of 17 steps, the same refinement.
  // `large_ok`: the predicate holds for large steps. Results are log2 steps.
  std::vector<double> Boundary(const std::vector<int>& rhos, double lo, double hi, bool on_size,
                               double threshold, bool large_ok) const;

  // Bounds that settle a step search's predicate without a prediction (Boundary): a lower
  // bound of the predicted size and an upper bound of the predicted squared error at `step`,
  // for every rho.
  double SizeBelow(double step) const;
  double SquaredErrorAbove(double step) const;

  // §11 symbol of each sample element at (step, rho_256).
  std::vector<int32_t> Symbols(double step, int rho_256) const;

  const std::vector<double>& sample() const { return sample_; }
  // The sorted sides (0: the positive values, 1: the negative values' magnitudes, ascending),
  // their prefix sums of m (power 1) and m² (power 2), the count of zeros and the (E, count)
  // runs by binary exponent: what the predictions read (exposed for tests of the sort).
  const Doubles& magnitudes(int s) const { return sides_[s].mags; }
  const Doubles& prefix_sums(int s, int power) const {
    return power == 1 ? sides_[s].s1 : sides_[s].s2;
  }
  double zeros() const { return zeros_; }
  const std::vector<std::pair<int, double>>& exponent_runs() const { return exponents_; }
  double scale() const { return scale_; }

 private:
  struct Side {
    Doubles mags, s1, s2;
    // first[k − key_min]: the first index whose magnitude's key (its bit pattern's exponent
    // and top four mantissa bits) is ≥ k, for k in [key_min, key_max + 1]; empty when the
    // keys span more than 4096 values (the searches then gallop from their start)
    std::vector<uint32_t> first;
    int64_t key_min = 0;
  };
  // Side::mags below x, every element before `from` known to be below x.
  static size_t Below(const Side& side, size_t from, double x);
  // The counts below each bin edge of a prediction, the starting point of the next search
  // at a nearby step (the step search's grid points are close after its first round).
  struct Hint {
    bool valid = false;
    size_t idx[2][kBins + 1];
  };
  // Symbol counts (into `sym`, kSymbols long) and squared error of one (step, rho); `hint`
  // (optional) is read as a start and overwritten with this prediction's counts.
  double Counts(double step, double rho, double* sym, int* used, Hint* hint) const;
  // Predict of one (step, rho_256) with a hint.
  void PredictOne(double step, double rho_256, double* size, double* sse, Hint* hint) const;

  std::vector<double> sample_;
  Side sides_[2];  // positive, negative
  // (E, count) of the sample's nonzero magnitudes by binary exponent E = floor(log2 |x|)
  std::vector<std::pair<int, double>> exponents_;
  double zeros_ = 0;
  uint64_t n_;
  double scale_;
  double header_bytes_;
};

// Ideal order-0 bits of per-class histograms (`hist`: k rows of kSymbols, summed over the
// rows) and, into `table_bytes`, the rows' estimated table bytes (§13.1).
double HistogramBits(const int64_t* hist, int k, int64_t* table_bytes);

// For each K of `ks`: HistogramBits of the symbols by class ⌊K·rank / length⌋ (`rank`: each
// sample element's position rank, in [0, length)). Entry j: (bits, table bytes) of ks[j].
std::vector<std::pair<double, int64_t>> RankClassBits(const int32_t* sym, const int64_t* rank,
                                                      size_t count, int64_t length,
                                                      const std::vector<int>& ks);

// Histogram (k rows of kSymbols) of symbols by class.
std::vector<int64_t> ClassHistogram(const int32_t* sym, const int64_t* cls, size_t count, int k);

// §18.4 boundaries estimated from the sample (_best_bounds of the NumPy model): for each K of
// `ks` the contiguous cut of the positions into K ranges on the grid of multiples of
// ceil(length / 64) minimising the estimated bytes; ties to the earlier boundary. Entry j of the
// result belongs to ks[j]: (estimated bytes, boundaries), an empty boundary list with bytes < 0
// when K exceeds the grid cells.
struct BoundsChoice {
  double bytes;
  std::vector<int64_t> bounds;
};
std::vector<BoundsChoice> BestBounds(const int64_t* pos, const int32_t* sym, size_t count,
                                     int64_t length, const std::vector<int>& ks, double scale);

// classes="auto" at one (step, rho) in one call: _class_saving of the NumPy model, the same
// candidates in the same order and the same arithmetic as its kernel pieces above (Symbols,
// HistogramBits, RankClassBits, BestBounds), so the same choice to the last bit. The sample's
// symbols are computed once and renumbered densely (the few of 423 it holds); where the class
// axis is short against the sample, one histogram by (position, symbol) serves every kind and
// K (a class is a set of positions), instead of a pass over the sample per kind.
struct ClassPlan {
  int kind = 0;         // 0: ranked positions (§18.2), 1: index ranges (§18.3), 2: §18.4 cut
  uint64_t outer = 1;   // the input viewed as (outer, length, inner)
  uint64_t length = 1;  // positions along the class axis
  uint64_t inner = 1;
  std::vector<int> ks;    // candidate K, each in 2..min(16, length)
  int64_t map_bytes = 0;  // kinds 0 and 1: the map's bytes
};
struct ClassChoice {
  int k = 1;                    // 1: no candidate saves
  size_t plan = 0;              // the winning plan's index
  double saving = 0;            // predicted bytes saved against one table
  std::vector<int64_t> bounds;  // kind 2: the boundaries
};
// `positions`: the sample's flat indices (null: element i of the sample is element i of the
// input); `data` / `dtype` / n: the model's input (for the ranked kind's Σ|x| per position).
ClassChoice ClassSearch(const Model& model, const int64_t* positions, const uint8_t* data,
                        int dtype, double step, int rho_256, const std::vector<ClassPlan>& plans);

}  // namespace slicer::rate

#endif  // SLICER_SRC_DENSE_RATE_MODEL_HPP_
