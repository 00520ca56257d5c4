// The rate model of mode="auto" (cpp/src/dense/rate_model.hpp) for python/slicer/_rate.py:
// an internal kernel, not part of the C ABI (the rate-control policy lives in Python). Glue
// only: argument checks that keep the kernel in bounds, conversions to NumPy arrays.
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "dense/dense_budget.hpp"
#include "dense/rate_model.hpp"
#include "glue.hpp"

namespace slicer_py {
namespace {

namespace rate = slicer::rate;

using Int64s = nb::ndarray<const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using Int32s = nb::ndarray<const int32_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using Doubles = nb::ndarray<const double, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

template <typename T>
nb::object Column(std::vector<T>&& values) {
  auto* heap = new std::vector<T>(std::move(values));
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  const size_t shape[1] = {heap->size()};
  return nb::ndarray<nb::numpy, T>(heap->data(), 1, shape, owner).cast();
}

// Elements of `raw` as dtype `dtype` (slicer codes 1..4); ValueError otherwise.
uint64_t ElementCount(ConstBytes raw, int dtype) {
  const size_t itemsize = dtype == 4 ? 8 : slicer_dtype_size(dtype);
  if (itemsize == 0 || dtype < 1 || dtype > 4) throw nb::value_error("dtype must be a code 1..4");
  if (raw.shape(0) % itemsize) throw nb::value_error("raw is not a whole number of elements");
  return raw.shape(0) / itemsize;
}

using PlanArgs = std::tuple<int, uint64_t, uint64_t, uint64_t, std::vector<int>, int64_t>;

struct PyRateModel {
  PyRateModel(ConstBytes raw, int dtype, std::optional<Int64s> positions, double header_bytes,
              bool want_energy)
      : pass(Read(raw, dtype, positions, want_energy)),
        model(std::move(pass.sample), ElementCount(raw, dtype), header_bytes),
        input(raw),
        input_dtype(dtype),
        sample_positions(positions) {
    pass.sample.clear();
  }

  static rate::FirstPass Read(ConstBytes raw, int dtype, const std::optional<Int64s>& positions,
                              bool want_energy) {
    const uint64_t n = ElementCount(raw, dtype);
    if (positions) {
      const int64_t* p = positions->data();
      for (size_t i = 0; i < positions->shape(0); ++i) {
        if (p[i] < 0 || static_cast<uint64_t>(p[i]) >= n)
          throw nb::value_error("positions must lie in [0, n)");
        if (i && p[i] < p[i - 1]) throw nb::value_error("positions must be ascending");
      }
    }
    nb::gil_scoped_release release;
    return rate::ReadInput(raw.data(), dtype, n, positions ? positions->data() : nullptr,
                           positions ? positions->shape(0) : 0, want_energy);
  }

  nb::tuple Predict(Doubles steps, Doubles rho_256) const {
    const size_t g = steps.shape(0);
    if (rho_256.shape(0) != g) throw nb::value_error("steps and rho_256 differ in length");
    std::vector<double> size(g), sse(g);
    model.Predict(steps.data(), rho_256.data(), g, size.data(), sse.data());
    return nb::make_tuple(Column(std::move(size)), Column(std::move(sse)));
  }

  std::vector<double> Boundary(const std::vector<int>& rhos, double lo, double hi, bool on_size,
                               double threshold, bool large_ok) const {
    return model.Boundary(rhos, lo, hi, on_size, threshold, large_ok);
  }

  nb::object Symbols(double step, int rho_256) const {
    if (!(step > 0)) throw nb::value_error("step must be positive");
    return Column(model.Symbols(step, rho_256));
  }

  // classes="auto" at (step, rho_256): plans are (kind 0 rank / 1 ranges / 2 bounds, outer,
  // length, inner, ks, map bytes); (K, plan index, saving, boundaries), K = 1 when none saves.
  nb::tuple ClassSearch(double step, int rho_256, const std::vector<PlanArgs>& plans) const {
    if (!(step > 0) || !(pass.max_abs / step < 4503599627370496.0))
      throw nb::value_error("step must be positive and above max |x| / 2^52");
    if (rho_256 < 0 || rho_256 > 255) throw nb::value_error("rho_256 must lie in 0..255");
    const uint64_t n = ElementCount(input, input_dtype);
    std::vector<rate::ClassPlan> list;
    for (const auto& [kind, outer, length, inner, ks, map_bytes] : plans) {
      if (kind < 0 || kind > 2) throw nb::value_error("a plan's kind must be 0, 1 or 2");
      if (length == 0 || inner == 0 || outer * length * inner != n)
        throw nb::value_error("a plan's outer * length * inner must be the element count");
      for (int k : ks) {
        if (k < 2 || k > 16 || static_cast<uint64_t>(k) > length)
          throw nb::value_error("a plan's ks must lie in 2..min(16, length)");
      }
      if (map_bytes < 0) throw nb::value_error("a plan's map bytes must not be negative");
      rate::ClassPlan plan;
      plan.kind = kind, plan.outer = outer, plan.length = length, plan.inner = inner;
      plan.ks = ks, plan.map_bytes = map_bytes;
      list.push_back(std::move(plan));
    }
    rate::ClassChoice choice;
    {
      nb::gil_scoped_release release;
      choice = rate::ClassSearch(model, sample_positions ? sample_positions->data() : nullptr,
                                 input.data(), input_dtype, step, rho_256, list);
    }
    return nb::make_tuple(choice.k, choice.plan, choice.saving, choice.bounds);
  }

  rate::FirstPass pass;  // max |x|, energy (the sample moved into the model)
  rate::Model model;
  ConstBytes input;  // the input and the sample's positions, kept for the class search
  int input_dtype;
  std::optional<Int64s> sample_positions;
};

nb::tuple ClassBits(Int32s sym, std::optional<Int64s> cls_given, int k) {
  const size_t count = sym.shape(0);
  std::vector<int64_t> zeros;
  if (!cls_given) zeros.assign(count, 0);
  const int64_t* cls = cls_given ? cls_given->data() : zeros.data();
  if (cls_given && cls_given->shape(0) != count)
    throw nb::value_error("sym and cls differ in length");
  if (k < 1) throw nb::value_error("k must be positive");
  for (size_t i = 0; i < count; ++i) {
    if (cls[i] < 0 || cls[i] >= k) throw nb::value_error("cls must lie in [0, k)");
    if (sym.data()[i] < 0 || sym.data()[i] >= rate::kSymbols)
      throw nb::value_error("sym must lie in [0, 423)");
  }
  const std::vector<int64_t> hist = rate::ClassHistogram(sym.data(), cls, count, k);
  int64_t tables = 0;
  const double bits = rate::HistogramBits(hist.data(), k, &tables);
  return nb::make_tuple(bits, tables);
}

// Classes K·rank[pos] div length (rank None: the position itself) per K of `ks`.
std::vector<std::pair<double, int64_t>> RankBits(Int32s sym, Int64s pos, std::optional<Int64s> rank,
                                                 int64_t length, const std::vector<int>& ks) {
  const size_t count = sym.shape(0);
  if (pos.shape(0) != count) throw nb::value_error("sym and pos differ in length");
  if (length < 1) throw nb::value_error("length must be positive");
  if (rank && rank->shape(0) != static_cast<size_t>(length))
    throw nb::value_error("rank must hold one entry per position");
  for (int k : ks) {
    if (k < 1 || k > 16) throw nb::value_error("ks must lie in 1..16");
  }
  for (int64_t a = 0; rank && a < length; ++a) {
    if (rank->data()[a] < 0 || rank->data()[a] >= length)
      throw nb::value_error("rank must lie in [0, length)");
  }
  for (size_t i = 0; i < count; ++i) {
    if (pos.data()[i] < 0 || pos.data()[i] >= length)
      throw nb::value_error("pos must lie in [0, length)");
    if (sym.data()[i] < 0 || sym.data()[i] >= rate::kSymbols)
      throw nb::value_error("sym must lie in [0, 423)");
  }
  nb::gil_scoped_release release;
  std::vector<int64_t> ranked(count);
  for (size_t i = 0; i < count; ++i) ranked[i] = rank ? rank->data()[pos.data()[i]] : pos.data()[i];
  return rate::RankClassBits(sym.data(), ranked.data(), count, length, ks);
}

nb::list BestBounds(Int64s pos, Int32s sym, int64_t length, const std::vector<int>& ks,
                    double scale) {
  const size_t count = sym.shape(0);
  if (pos.shape(0) != count) throw nb::value_error("pos and sym differ in length");
  if (length < 1) throw nb::value_error("length must be positive");
  for (size_t i = 0; i < count; ++i) {
    if (pos.data()[i] < 0 || pos.data()[i] >= length)
      throw nb::value_error("pos must lie in [0, length)");
    if (sym.data()[i] < 0 || sym.data()[i] >= rate::kSymbols)
      throw nb::value_error("sym must lie in [0, 423)");
  }
  for (int k : ks) {
    if (k < 2 || k > 16) throw nb::value_error("ks must lie in 2..16");
  }
  std::vector<rate::BoundsChoice> out;
  {
    nb::gil_scoped_release release;
    out = rate::BestBounds(pos.data(), sym.data(), count, length, ks, scale);
  }
  nb::list result;
  for (size_t q = 0; q < ks.size(); ++q) {
    if (out[q].bytes < 0) continue;
    result.append(nb::make_tuple(ks[q], out[q].bytes, out[q].bounds));
  }
  return result;
}

nb::object PositionScores(ConstBytes raw, int dtype, uint64_t outer, uint64_t length,
                          uint64_t inner) {
  const uint64_t n = ElementCount(raw, dtype);
  if (length == 0 || outer * length * inner != n)
    throw nb::value_error("outer * length * inner must be the element count");
  std::vector<double> out;
  {
    nb::gil_scoped_release release;
    out = rate::PositionScores(raw.data(), dtype, outer, length, inner);
  }
  return Column(std::move(out));
}

nb::tuple Stats(ConstBytes raw, int dtype, bool energy) {
  const uint64_t n = ElementCount(raw, dtype);
  double max_abs = 0.0, sum = 0.0;
  {
    nb::gil_scoped_release release;
    max_abs = rate::MaxAbs(raw.data(), dtype, n);
    if (energy) sum = rate::Energy(raw.data(), dtype, n);
  }
  return nb::make_tuple(max_abs, sum);
}

}  // namespace

void RegisterRate(nb::module_& m) {
  nb::class_<PyRateModel>(m, "RateModel",
                          "The dense rate model (mode='auto') on a sample of the input.")
      .def(nb::init<ConstBytes, int, std::optional<Int64s>, double, bool>(), nb::arg("raw"),
           nb::arg("dtype"), nb::arg("positions").none(), nb::arg("header_bytes"),
           nb::arg("energy") = false)
      .def_prop_ro("max_abs", [](const PyRateModel& self) { return self.pass.max_abs; })
      .def_prop_ro(
          "energy", [](const PyRateModel& self) { return self.pass.energy; },
          "Σ x² of the input when asked for at construction, else 0.")
      .def_prop_ro("scale", [](const PyRateModel& self) { return self.model.scale(); })
      .def_prop_ro(
          "sample",
          [](const PyRateModel& self) { return Column(std::vector<double>(self.model.sample())); })
      .def("predict", &PyRateModel::Predict, nb::arg("steps"), nb::arg("rho_256"),
           "(bytes, squared error) predicted for each (step, rho_256).")
      .def("boundary", &PyRateModel::Boundary, nb::arg("rhos"), nb::arg("lo"), nb::arg("hi"),
           nb::arg("on_size"), nb::arg("threshold"), nb::arg("large_ok"),
           "Per rounding offset, the log2 step at the boundary of value <= threshold.")
      .def(
          "bounds",
          [](const PyRateModel& self, double step) {
            if (!(step > 0)) throw nb::value_error("step must be positive");
            return nb::make_tuple(self.model.SizeBelow(step), self.model.SquaredErrorAbove(step));
          },
          nb::arg("step"),
          "(a lower bound of the predicted bytes, an upper bound of the predicted squared error) "
          "at `step`, for every rho: what settles a step search's grid point unpredicted.")
      .def(
          "sorted_sides",
          [](const PyRateModel& self) {
            const rate::Model& m = self.model;
            nb::list sides;
            for (int s = 0; s < 2; ++s) {
              auto copy = [](const rate::Doubles& v) {
                return Column(std::vector<double>(v.begin(), v.end()));
              };
              sides.append(nb::make_tuple(copy(m.magnitudes(s)), copy(m.prefix_sums(s, 1)),
                                          copy(m.prefix_sums(s, 2))));
            }
            return nb::make_tuple(sides[0], sides[1], m.zeros(), m.exponent_runs());
          },
          "((magnitudes, Σm prefix, Σm² prefix) of the positive and of the negative side, zeros, "
          "(E, count) runs by binary exponent): the sorted sample the predictions read.")
      .def("symbols", &PyRateModel::Symbols, nb::arg("step"), nb::arg("rho_256"),
           "The §11 symbol of each sample element.")
      .def("class_search", &PyRateModel::ClassSearch, nb::arg("step"), nb::arg("rho_256"),
           nb::arg("plans"),
           "classes='auto' at (step, rho_256) over plans (kind, outer, length, inner, ks, map "
           "bytes): (K, plan index, predicted saving, boundaries).");
  m.def("rate_class_bits", &ClassBits, nb::arg("sym"), nb::arg("cls").none(), nb::arg("k"),
        "(ideal bits, table bytes) of the per-class histograms of the symbols.");
  m.def("rate_rank_bits", &RankBits, nb::arg("sym"), nb::arg("pos"), nb::arg("rank").none(),
        nb::arg("length"), nb::arg("ks"),
        "[(ideal bits, table bytes)] per K of classes K·rank[pos] div length.");
  m.def("rate_best_bounds", &BestBounds, nb::arg("pos"), nb::arg("sym"), nb::arg("length"),
        nb::arg("ks"), nb::arg("scale"),
        "[(K, estimated bytes, boundaries)]: the §18.4 cut per K (K above the grid left out).");
  m.def("rate_position_scores", &PositionScores, nb::arg("raw"), nb::arg("dtype"), nb::arg("outer"),
        nb::arg("length"), nb::arg("inner"),
        "Σ|x| per position along the middle axis of (outer, length, inner).");
  m.def("rate_stats", &Stats, nb::arg("raw"), nb::arg("dtype"), nb::arg("energy"),
        "(max |x|, Σ x² or 0): one pass over the input.");
  m.def(
      "rate_sample_positions",
      [](uint64_t n) {
        if (n <= (uint64_t{1} << 15)) throw nb::value_error("n must exceed 2^15");
        return Column(std::vector<int64_t>(*slicer::dense::SamplePositions(n)));
      },
      nb::arg("n"), "The model's sample positions of an n-element input (C++: _sample_positions).");
}

}  // namespace slicer_py
