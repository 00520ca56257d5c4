"""Calibration: per cut, the fewest bits per element that keep the model's quality.

For every cut the search evaluates codec settings on the calibration split (head once per
input, then codec → tail per setting) and keeps the cheapest one — mean bits per element of
the real streams — that meets every target. The chosen setting is then measured on the
held-out split, with a bootstrap 95 % interval; a cut whose interval does not clear a target
is marked ``interval-misses``, one where no setting meets the targets ``unreachable`` (with
the best value reached).

Codec modes are pluggable candidate families (:class:`Family`): ``dense`` (a bisection over
``rel_step``, with class tables, ``classes="auto"``, and one table where that is cheaper),
``topk`` (a bisection over sparsity for each width, per tensor and — for token sequences —
per row), and ``auto`` (bisection over ``rel_error``) when the installed codec has modes.
Each family proposes settings ordered from the most generous to the cheapest and assumes the
metric gets worse along that order. The geometric knobs of ``dense`` and ``auto`` are
refined: a bisection over the coarse grid, then ``refine`` more bisection steps between the
last passing and the first failing grid point (``2**refine`` fine steps per coarse step); the
back-off is counted in fine steps.

Evaluations stop early once a target can no longer be met: agreement by the count of
disagreeing rows, cosine by its upper bound 1 per input, KL and relative L2 by their
running sums (all exact bounds, so the answer is the same as a full evaluation).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from . import fidelity
from .graph import Cut, Partitioner
from .settings import SETTINGS_VERSION, Target, as_targets, fingerprint
from .transport import CodecParams, decode_packet, encode_values

BOOTSTRAP_ROUNDS = 2000
ESTIMATE_INPUTS = 8  # inputs whose streams estimate a setting's cost before its tail runs
TOPK_BITS = (8, 6, 5, 4, 3, 2)
TOPK_SPARSITIES = (0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.99)
AUTO_REL_ERRORS = tuple(float(x) for x in np.geomspace(2e-3, 0.32, 12))
DENSE_REL_STEPS = tuple(float(x) for x in np.geomspace(0.002, 2.0, 16))
REFINE = 2  # bisection steps inside a coarse step of a geometric knob (4 fine steps, 1.12x)
DENSE_CLASSES = ("auto", None)  # the dense family's tables: class tables, then one table


# ------------------------------------------------------------------------------ metrics


def _probabilities(x: np.ndarray) -> bool:
    """Rows that are already probability distributions (a softmax output)."""
    rows = x.reshape(-1, x.shape[-1])
    return bool(rows.min() >= 0 and np.allclose(rows.sum(-1), 1.0, atol=1e-3))


def _log_probs(x: np.ndarray, is_prob: bool) -> np.ndarray:
    rows = x.reshape(-1, x.shape[-1]).astype(np.float64)
    return np.log(np.clip(rows, 1e-12, None)) if is_prob else fidelity.log_softmax(rows)


def sample_stats(
    metric: str,
    ref: np.ndarray,
    got: np.ndarray,
    inputs: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Sufficient statistics of one input for one metric (summed over inputs, then
    :func:`aggregate` gives the metric)."""
    if metric == "agreement":
        r = ref.reshape(-1, ref.shape[-1])
        g = got.reshape(-1, got.shape[-1])
        return np.array([float(np.sum(r.argmax(-1) == g.argmax(-1))), float(r.shape[0])])
    if metric == "cosine":
        return np.array([fidelity.cosine(ref, got), 1.0])
    if metric == "rel_l2":
        r = ref.astype(np.float64).ravel()
        d = got.astype(np.float64).ravel() - r
        n = float(np.linalg.norm(r))
        return np.array([float(np.linalg.norm(d) / n) if n > 0 else float(np.linalg.norm(d)), 1.0])
    if metric == "kl":
        is_prob = _probabilities(ref)
        lp, lq = _log_probs(ref, is_prob), _log_probs(got, is_prob)
        kl = np.sum(np.exp(lp) * (lp - lq), axis=-1)
        return np.array([float(np.sum(kl)), float(kl.size)])
    if metric == "ppl":
        ids = _token_ids(inputs)
        labels = ids.reshape(-1)[1:]
        lp = _log_probs(ref, _probabilities(ref))[:-1]
        lq = _log_probs(got, _probabilities(ref))[:-1]
        rows = np.arange(labels.size)
        return np.array(
            [float(-lq[rows, labels].sum()), float(-lp[rows, labels].sum()), float(labels.size)]
        )
    raise ValueError(f"unknown metric {metric!r}")


def _token_ids(inputs: Mapping[str, np.ndarray] | None) -> np.ndarray:
    if inputs:
        for name, value in inputs.items():
            if "ids" in name.lower() and np.issubdtype(value.dtype, np.integer):
                return value
        ints = [v for v in inputs.values() if np.issubdtype(v.dtype, np.integer)]
        if len(ints) == 1:
            return ints[0]
    raise ValueError("metric 'ppl' needs a causal LM whose input holds the token ids")


def aggregate(metric: str, stats: np.ndarray) -> float:
    """The metric from summed statistics (``stats``: (..., k) summed over inputs)."""
    stats = np.asarray(stats, dtype=np.float64)
    if metric == "ppl":
        return float(np.expm1((stats[..., 0] - stats[..., 1]) / stats[..., 2]))
    return float(stats[0] / stats[1])


def bootstrap_interval(
    metric: str, per_sample: np.ndarray, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0
) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the metric over inputs (resampled with
    replacement)."""
    per_sample = np.asarray(per_sample, dtype=np.float64)
    n = per_sample.shape[0]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(rounds, n))
    sums = per_sample[idx].sum(axis=1)  # (rounds, k)
    if metric == "ppl":
        values = np.expm1((sums[:, 0] - sums[:, 1]) / sums[:, 2])
    else:
        values = sums[:, 0] / sums[:, 1]
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def output_for(metric: str, outputs: Mapping[str, np.ndarray], preferred: str | None) -> str:
    """Which model output a metric reads: ``preferred``, else the first logits-like output
    for agreement / kl / ppl, else the first float output."""
    if preferred is not None:
        if preferred not in outputs:
            raise ValueError(f"no model output {preferred!r}; outputs: {sorted(outputs)}")
        return preferred
    floats = [n for n, v in outputs.items() if v.dtype.kind == "f"]
    if not floats:
        raise ValueError("the model has no floating-point output to measure fidelity on")
    if metric in ("agreement", "kl", "ppl"):
        classy = [n for n in floats if outputs[n].ndim >= 1 and outputs[n].shape[-1] >= 2]
        logits = [n for n in classy if fidelity.looks_like_logits(n, outputs[n])]
        pick = (logits or classy or [None])[0]
        if pick is None:
            raise ValueError(
                f"metric {metric!r} needs an output with a class axis; outputs: "
                f"{ {n: list(v.shape) for n, v in outputs.items()} }"
            )
        return pick
    return floats[0]


# ------------------------------------------------------------------------------ families


@dataclass
class Point:
    """One evaluated setting: cost and metrics on the calibration split."""

    params: CodecParams
    bits_per_element: float
    payload_bytes: float
    payload_bytes_max: int
    metrics: dict[str, float]
    passed: bool
    complete: bool  # False when stopped early (metrics are then partial)
    seconds: float = 0.0
    skipped: bool = False  # never run: its estimated cost exceeds a passing setting's
    chosen: bool = False  # a bisection's pick (after the back-off): eligible as the result

    def to_json(self) -> dict[str, Any]:
        return {
            "params": self.params.to_json(),
            "bits_per_element": self.bits_per_element,
            "metrics": self.metrics,
            "passed": self.passed,
            "complete": self.complete,
            **({"skipped": True} if self.skipped else {}),
            **({"eligible": True} if self.chosen else {}),
        }


Evaluate = Callable[[CodecParams], Point]


class Family:
    """A codec mode as a candidate family. ``search`` calls ``evaluate`` on settings of its
    choice and returns the cheapest passing point (or None)."""

    name = "family"

    def available(self) -> bool:
        return True

    def search(self, evaluate: Evaluate, cut_shapes: Sequence[tuple[int, ...]]) -> None:
        raise NotImplementedError


def fine_grid(values: Sequence[float], refine: int) -> list[float]:
    """``values`` (a geometric knob, generous → cheap) with ``2**refine`` log-spaced steps
    in each interval; the coarse values stay at indices ``k * 2**refine``."""
    if not isinstance(refine, int) or refine < 0:
        raise ValueError(f"refine must be an integer ≥ 0, got {refine!r}")
    values = [float(v) for v in values]
    if len(values) < 2 or refine == 0:
        return values
    n = 2**refine
    out = []
    for a, b in zip(values[:-1], values[1:], strict=True):
        if a <= 0 or b <= 0:
            raise ValueError("a refined knob must be positive")
        out += [a * (b / a) ** (j / n) for j in range(n)]
    return [*out, values[-1]]


def _bisect(evaluate: Evaluate, settings: Sequence[CodecParams], stride: int = 1) -> Point | None:
    """The last passing setting along ``settings`` (ordered generous → cheap, quality
    assumed to fall along it); checks the first one before bisecting. A skipped setting
    (costlier than one already passing) counts as passing for the direction only.

    ``stride`` > 1: ``settings`` is a fine grid whose every ``stride``-th entry (and the last)
    is a coarse grid point; the bisection runs over the coarse points first, then between the
    last passing and the first failing coarse point. The back-off is counted in fine steps."""
    if not settings:
        return None
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be an integer ≥ 1, got {stride!r}")
    found: dict[int, Point] = {}

    def at(i: int) -> Point:
        if i not in found:
            found[i] = evaluate(settings[i])
        return found[i]

    first = at(0)
    if not (first.passed or first.skipped):
        return None
    best = first if first.passed else None
    n = len(settings)
    coarse = list(range(0, n, stride))
    if coarse[-1] != n - 1:
        coarse.append(n - 1)
    clo, chi = 0, len(coarse)  # coarse[clo] passes, coarse[chi:] unknown/fail
    while chi - clo > 1:
        mid = (clo + chi) // 2
        p = at(coarse[mid])
        if p.passed or p.skipped:
            clo, best = mid, (p if p.passed else best)
        else:
            chi = mid
    lo, hi = coarse[clo], (coarse[chi] if chi < len(coarse) else n)
    while hi - lo > 1:  # refinement between the coarse points (nothing to do when stride = 1)
        mid = (lo + hi) // 2
        p = at(mid)
        if p.passed or p.skipped:
            lo, best = mid, (p if p.passed else best)
        else:
            hi = mid
    # Back off ``backoff`` steps towards the generous end: the pick keeps a margin of one
    # knob step over the cheapest setting that passed on the calibration split. The metric
    # is not always monotone along the knob (a few near-tie inputs flip at random), so a
    # back-off setting that fails is passed over for the next more generous one that passes.
    for pick in range(max(0, lo - getattr(evaluate, "backoff", 0)), -1, -1):
        p = at(pick)
        if p.passed:
            p.chosen = True
            return p
        if p.skipped:  # costlier than a pick already made; more generous ones cost more
            break
    return best


@dataclass
class TopKFamily(Family):
    """``mode="topk"``: for each width, the highest sparsity that passes; per tensor, and also
    per row when the cut tensor is a sequence of token rows (rank 3, more than one row)."""

    bits: Sequence[int] = TOPK_BITS
    sparsities: Sequence[float] = TOPK_SPARSITIES
    blocks: int = 3
    delta: float = 0.0
    groups: Sequence[str] | None = None  # None: "tensor", plus "rows" for token sequences
    name: str = "topk"

    def search(self, evaluate: Evaluate, cut_shapes: Sequence[tuple[int, ...]]) -> None:
        groupings = list(self.groups or ["tensor"])
        if self.groups is None and any(len(s) == 3 and s[1] > 1 for s in cut_shapes):
            groupings.append("rows")
        for groups in groupings:
            for b in self.bits:
                settings = [
                    CodecParams(
                        sparsity=s, blocks=self.blocks, bits=b, delta=self.delta, groups=groups
                    )
                    for s in self.sparsities
                ]
                _bisect(evaluate, settings)


def _refine(evaluate: Evaluate) -> int:
    return getattr(evaluate, "refine", 0)


@dataclass
class AutoFamily(Family):
    """``mode="auto"`` (dense, format 2) with a ``rel_error`` budget: one knob, bisected (and
    refined, see :func:`_bisect`). One step per tensor by default (the MSE-optimal choice;
    ``groups`` adds "channels" or "rows")."""

    rel_errors: Sequence[float] = AUTO_REL_ERRORS
    groups: Sequence[str] = ("tensor",)
    name: str = "auto"

    def available(self) -> bool:
        from .transport import _encode_accepts

        return _encode_accepts("mode") and _encode_accepts("rel_error")

    def search(self, evaluate: Evaluate, cut_shapes: Sequence[tuple[int, ...]]) -> None:
        refine = _refine(evaluate)
        grid = fine_grid(self.rel_errors, refine)
        for groups in self.groups:
            _bisect(
                evaluate,
                [CodecParams(mode="auto", rel_error=e, groups=groups) for e in grid],
                stride=2**refine,
            )


@dataclass
class DenseFamily(Family):
    """``mode="dense"`` (format 2) with the step set per tensor to ``rel_step`` × its RMS:
    one knob, bisected (and refined, see :func:`_bisect`), one encode per tensor (``auto``
    with ``rel_error`` searches the step inside the encoder, several encodes per tensor).

    ``classes``: the frequency tables tried, the first one along the bisection. The tables
    change the entropy coding only — the same step gives the same codes and the same decoded
    values — so the others are tried at the bisection's pick alone, and evaluated only when
    their streams on the first calibration inputs are smaller than the pick's (one table
    beats ``classes="auto"`` where the rate model's estimate misjudges a small tensor)."""

    rel_steps: Sequence[float] = DENSE_REL_STEPS
    groups: Sequence[str] = ("tensor",)
    classes: Sequence[int | str | None] = DENSE_CLASSES
    name: str = "dense"
    trellis: bool | float | None = None  # mode 3 (docs/format.md §21): True or λ

    def available(self) -> bool:
        from .transport import _encode_accepts

        return _encode_accepts("mode") and _encode_accepts("step")

    def search(self, evaluate: Evaluate, cut_shapes: Sequence[tuple[int, ...]]) -> None:
        refine = _refine(evaluate)
        grid = fine_grid(self.rel_steps, refine)
        primary, *others = list(self.classes) or [None]
        for groups in self.groups:
            pick = _bisect(
                evaluate,
                [
                    CodecParams(
                        mode="dense",
                        rel_step=r,
                        groups=groups,
                        classes=primary,
                        trellis=self.trellis,
                    )  # fmt: skip
                    for r in grid
                ],
                stride=2**refine,
            )
            if pick is None or not pick.chosen:
                continue
            estimate = getattr(evaluate, "estimate", None)
            for classes in others:
                variant = replace(pick.params, classes=classes)
                if estimate is not None and estimate(variant) >= estimate(pick.params):
                    continue  # not smaller on the same inputs at the same step
                p = evaluate(variant)
                p.chosen = p.passed


def default_families() -> list[Family]:
    return [f for f in (DenseFamily(), TopKFamily(), AutoFamily()) if f.available()]


def families_for(modes: str | Sequence[str], trellis: bool | float | None = None) -> list[Family]:
    """Families by mode name ("topk,dense,auto"); a mode the codec lacks is an error.
    ``trellis``: the dense family codes with trellis-coded quantization (mode 3, True or λ)."""
    known = {"topk": TopKFamily, "dense": DenseFamily, "auto": AutoFamily}
    names = [m.strip() for m in modes.split(",")] if isinstance(modes, str) else list(modes)
    out = []
    for name in names:
        if name not in known:
            raise ValueError(f"unknown codec mode {name!r}; modes: {', '.join(known)}")
        family = known[name]() if name != "dense" or not trellis else DenseFamily(trellis=trellis)
        if not family.available():
            raise ValueError(f"codec mode {name!r} is not available in this SLICER build")
        out.append(family)
    if not out:
        raise ValueError("--modes names no codec mode")
    return out


# ------------------------------------------------------------------------------ evaluation


class _CutEvaluator:
    """Head outputs cached per input; evaluates one codec setting on a subset of inputs."""

    def __init__(
        self,
        part: Partitioner,
        cut: Cut,
        samples: Sequence[Mapping[str, np.ndarray]],
        references: Sequence[Mapping[str, np.ndarray]],
        targets: Sequence[Target],
        outputs: Mapping[str, str],
        providers: Sequence[str],
        threads: int,
    ) -> None:
        from .runner import SplitModel

        self.split = SplitModel(part, cut, providers=list(providers), threads=threads)
        self.samples = samples
        self.references = references
        self.targets = targets
        self.outputs = outputs
        self.cut_values = []
        for inputs in samples:
            head_inputs = {i.name: inputs[i.name] for i in self.split.head.get_inputs()}
            values = self.split.run_head(head_inputs)
            for t in cut.tensors:
                if t.name not in values:
                    values[t.name] = inputs[t.name]
            self.cut_values.append(values)
        self.shapes = [tuple(v.shape) for v in self.cut_values[0].values()]
        self.raw_bytes = int(
            np.mean([sum(v.nbytes for v in cv.values()) for cv in self.cut_values])
        )
        self.evaluations = 0

    def _totals(self, indices: Sequence[int]) -> dict[str, float]:
        """Per metric, the denominator total over ``indices`` (rows for agreement / KL)."""
        out = {}
        for t in self.targets:
            name = self.outputs[t.metric]
            if t.metric in ("agreement", "kl"):
                out[t.metric] = float(
                    sum(
                        self.references[i][name].size // self.references[i][name].shape[-1]
                        for i in indices
                    )
                )
            else:
                out[t.metric] = float(len(indices))
        return out

    def per_sample(
        self, params: CodecParams | Callable[[Mapping[str, np.ndarray]], Any], i: int
    ) -> tuple[dict[str, np.ndarray], int, int]:
        """Stats of input ``i`` through the codec (``params``) or through ``params(values)``
        → (received values, bytes sent, elements sent) for a baseline transform."""
        if callable(params):
            received, nbytes, elements = params(self.cut_values[i])
        else:
            packet = encode_values(self.cut_values[i], params, self.split.transforms)
            received, _ = decode_packet(packet, self.split.transforms, self.split.estimators)
            nbytes = packet.encoded_bytes
            elements = packet.coded_elements + sum(a.size for a in packet.raw.values())
        got = self.split.run_tail(received)
        stats = {
            t.metric: sample_stats(
                t.metric,
                self.references[i][self.outputs[t.metric]],
                got[self.outputs[t.metric]],
                self.samples[i],
            )
            for t in self.targets
        }
        return stats, nbytes, elements

    def estimate_bits(self, params: CodecParams, indices: Sequence[int]) -> float:
        """Bits per element of the streams alone (no tail run)."""
        bits = elements = 0
        for i in indices:
            packet = encode_values(self.cut_values[i], params, self.split.transforms)
            bits += 8 * packet.encoded_bytes
            elements += packet.coded_elements + sum(a.size for a in packet.raw.values())
        return bits / max(elements, 1)

    def evaluate(
        self, params: CodecParams, indices: Sequence[int], early_stop: bool = True
    ) -> tuple[Point, dict[str, np.ndarray]]:
        start = time.perf_counter()
        self.evaluations += 1
        totals = self._totals(indices)
        sums = {t.metric: None for t in self.targets}
        per: dict[str, list[np.ndarray]] = {t.metric: [] for t in self.targets}
        bits = elements_sum = 0
        sizes = []
        complete = True
        for done, i in enumerate(indices, 1):
            stats, nbytes, elements = self.per_sample(params, i)
            bits += 8 * nbytes
            elements_sum += elements
            sizes.append(nbytes)
            for m, s in stats.items():
                per[m].append(s)
                sums[m] = s if sums[m] is None else sums[m] + s
            if early_stop and done < len(indices) and self._hopeless(sums, totals, len(indices)):
                complete = False
                break
        metrics = {m: aggregate(m, s) for m, s in sums.items()}
        passed = complete and all(t.met(metrics[t.metric]) for t in self.targets)
        point = Point(
            params=params,
            bits_per_element=bits / max(elements_sum, 1),
            payload_bytes=float(np.mean(sizes)),
            payload_bytes_max=int(max(sizes)),
            metrics=metrics,
            passed=passed,
            complete=complete,
            seconds=time.perf_counter() - start,
        )
        return point, {m: np.array(v) for m, v in per.items()}

    def _hopeless(
        self, sums: Mapping[str, np.ndarray], totals: Mapping[str, float], n: int
    ) -> bool:
        """True when some target can no longer be met whatever the remaining inputs give."""
        for t in self.targets:
            s = sums[t.metric]
            if t.metric == "agreement":
                missed = s[1] - s[0]
                if missed > (1 - t.value) * totals["agreement"] + 1e-9:
                    return True
            elif t.metric == "cosine":
                remaining = n - s[1]
                if (s[0] + remaining) / n < t.value - 1e-12:
                    return True
            elif t.metric in ("kl", "rel_l2"):
                if s[0] / totals[t.metric] > t.value + 1e-12:
                    return True
        return False


# ------------------------------------------------------------------------------ calibrate


def select_calibration_cuts(part: Partitioner, split: str | int | Sequence[Any], max_cuts: int):
    """Cuts for ``split``: "auto" (mid-network layer boundary), "all" (layer boundaries,
    thinned to ``max_cuts``), a name, an index, or a list of names / indices."""
    from .profile import select_cuts

    if isinstance(split, (list, tuple)):
        return [part.find_cut(s) for s in split]
    if split == "auto":
        return [auto_cut(part)]
    if split == "all":
        return select_cuts(part, "simple", max_cuts)
    if isinstance(split, str) and "," in split:
        return [part.find_cut(s.strip()) for s in split.split(",")]
    return [part.find_cut(split)]


def split_indices(
    n: int, holdout: float, seed: int, groups: Sequence[Any] | None = None
) -> tuple[list[int], list[int]]:
    """(calibration, held-out) input indices: a seeded permutation, ``holdout`` of them held
    out (at least one each way); ``holdout=0`` measures on the calibration inputs.

    With ``groups`` (one label per input, e.g. the source photo of each view) whole groups are
    held out: groups in a seeded order go to the held-out side until it holds at least
    ``holdout`` of the inputs (at least one group each way), so no group has inputs on both
    sides."""
    if holdout == 0:
        return list(range(n)), list(range(n))
    if groups is None:
        order = np.random.default_rng(seed).permutation(n)
        n_hold = max(1, min(n - 1, int(round(holdout * n))))
        return sorted(order[n_hold:].tolist()), sorted(order[:n_hold].tolist())
    groups = list(groups)
    if len(groups) != n:
        raise ValueError(f"groups: {len(groups)} labels for {n} inputs")
    members: dict[Any, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    if len(members) < 2:
        raise ValueError("a grouped held-out split needs at least 2 groups of inputs")
    keys = list(members)
    order = np.random.default_rng(seed).permutation(len(keys))
    want = max(1, int(round(holdout * n)))
    hold: list[int] = []
    for taken, k in enumerate(order):
        if len(hold) >= want or taken == len(keys) - 1:
            break
        hold += members[keys[k]]
    held = set(hold)
    return [i for i in range(n) if i not in held], sorted(hold)


def auto_cut(part: Partitioner) -> Cut:
    """A mid-network layer boundary: the simple cut nearest half of the compute nodes."""
    cuts = part.cuts()
    simple = [c for c in cuts if c.simple] or cuts
    middle = cuts[-1].node_index / 2
    return min(simple, key=lambda c: abs(c.node_index - middle))


def setting_text(p: Mapping[str, Any]) -> str:
    """A codec setting (``CodecParams.to_json()``) in a few words."""
    mode = p.get("mode", "topk")
    if mode == "topk":
        return f"topk s={p['sparsity']:g} b={p['bits']} {p['groups']}"
    tables = f" classes={p['classes']}" if p.get("classes") is not None else ""
    if p.get("trellis") not in (None, False):
        tables += " trellis" if p["trellis"] is True else f" trellis={p['trellis']:g}"
    for key in ("rel_step", "rel_error", "step", "max_bytes"):
        if p.get(key) is not None:
            return f"{mode} {key}={p[key]:.3g} {p['groups']}{tables}"
    return f"{mode} {p['groups']}{tables}"


def estimator_text(entry: Mapping[str, Any]) -> str:
    """What became of a cut's decoder-side estimator, in a few words ("" without one)."""
    if "estimator" in entry:
        return " +lmmse"
    return " (lmmse not kept)" if "estimator_tried" in entry else ""


def _fmt_metric(metric: str, value: float) -> str:
    if value is None or not math.isfinite(value):
        return "nan"
    if metric == "agreement":
        return f"{100 * value:.2f} %"
    if metric == "ppl":
        return f"{100 * value:+.2f} %"
    return f"{value:.5g}"


def calibrate(
    model: str | os.PathLike | onnx.ModelProto | Partitioner,
    targets: Target | str | Sequence[Target | str],
    samples: Sequence[Mapping[str, np.ndarray]],
    *,
    split: str | int | Sequence[Any] = "auto",
    holdout: float = 0.3,
    seed: int = 0,
    max_cuts: int = 8,
    families: Sequence[Family] | None = None,
    output: str | None = None,
    providers: Sequence[str] | str | None = ("CPUExecutionProvider",),
    threads: int = 1,
    guard: float = 0.5,
    backoff: int = 1,
    refine: int = REFINE,
    model_name: str | None = None,
    data_label: str = "inputs",
    progress: bool | Callable[[str], Any] = False,
    groups: Sequence[Any] | None = None,
    transform: bool = False,
    transform_dir: str | os.PathLike | None = None,
    estimator: bool = False,
) -> dict[str, Any]:
    """Calibrate codec settings per cut; returns the settings dict (see ``settings.py``).

    ``samples``: a list of input dicts (one model run each). ``holdout``: fraction kept apart
    for the held-out measurement (0 measures on the calibration inputs themselves and says
    so). ``families``: codec-mode candidate families (default: every mode the codec has).
    ``guard``: the search demands that the calibration split meet each target with only this
    fraction of its allowed loss (0.5: agreement ≥ 99 % is searched as ≥ 99.5 %, ppl ≤ +2 %
    as ≤ +1 %), a margin for the held-out split; 1 searches at the target itself.
    ``backoff``: each bisection's pick is this many knob steps more generous than the
    cheapest setting that passed (a second margin; 0 takes the cheapest), in fine steps where
    the knob is refined.
    ``refine``: bisection steps added inside a coarse step of the geometric knobs (``dense``
    ``rel_step``, ``auto`` ``rel_error``): ``2**refine`` fine steps per coarse step (2: a fine
    step is 1.12× in step size where the coarse one is 1.58×); 0 searches the coarse grid.
    ``groups``: one label per input (default: ``samples.groups`` when the samples come from
    an image dataset, see ``datasets.Samples``); the held-out split then holds out whole
    groups — every view of a photo stays on one side.
    ``transform``: per cut, also fit the KLT of its (largest) coded tensor on the calibration
    split only (:class:`~slicer.split.transform.CutTransform`), run the same search on its
    coefficients, and keep whichever setting is cheaper (a better status first): the entry
    then references the transform, written to ``transform_dir`` (default: the model cache) as
    ``klt-<fingerprint>.npz``; otherwise it records the one tried (``transform_tried``). Both
    bit rates are in the transform object. The KLT wins on linearly correlated features
    (transformer residual streams) and can lose on sparse post-ReLU maps (bench/RESULTS.md
    §9.6): this is why it is searched, not imposed.
    ``estimator``: per cut, after the search, fit a decoder-side linear MMSE estimator
    (:class:`~slicer.split.estimator.CutEstimator`: a 3 × 3 neighbourhood of every channel
    for an (N, C, H, W) map, the whole row otherwise) of the largest coded tensor on the
    calibration split at the chosen setting, and measure the held-out split with it; the entry
    references it (``estimator``, written beside the transform) when no target is worse there,
    else records it as ``estimator_tried``. It costs no bits; the receiver applies it after
    decode (bench/RESULTS.md §9.21).
    """
    if not isinstance(backoff, int) or backoff < 0:
        raise ValueError(f"backoff must be an integer ≥ 0, got {backoff!r}")
    if not isinstance(refine, int) or isinstance(refine, bool) or not 0 <= refine <= 6:
        raise ValueError(f"refine must be an integer in 0..6, got {refine!r}")
    from .providers import make_session, resolve_providers

    target_list = as_targets(targets)
    search_targets = [t.guarded(guard) for t in target_list]
    if not 0 <= holdout < 1:
        raise ValueError(f"holdout must be in [0, 1), got {holdout!r}")
    if groups is None:
        groups = getattr(samples, "groups", None)
    samples = list(samples)
    if len(samples) < 2:
        raise ValueError(f"calibration needs at least 2 inputs, got {len(samples)}")
    part = model if isinstance(model, Partitioner) else Partitioner(model)
    cuts = select_calibration_cuts(part, split, max_cuts)
    families = list(families) if families is not None else default_families()
    if not families:
        raise ValueError("no codec candidate family is available")
    provider_list = resolve_providers(providers)
    full = make_session(part.model, provider_list, threads, part.external_dir)
    out_names = [o.name for o in full.get_outputs()]
    feed_names = [i.name for i in full.get_inputs()]
    references = []
    for s in samples:
        missing = [n for n in feed_names if n not in s]
        if missing:
            raise ValueError(f"an input sample lacks {missing} (the model needs {feed_names})")
        references.append(
            dict(zip(out_names, full.run(out_names, {n: s[n] for n in feed_names}), strict=True))
        )
    outputs = {t.metric: output_for(t.metric, references[0], output) for t in target_list}
    if any(t.metric == "ppl" for t in target_list):
        _token_ids(samples[0])  # fail early on a model without token ids
    calib_idx, hold_idx = split_indices(len(samples), holdout, seed, groups)
    n_hold = 0 if holdout == 0 else len(hold_idx)
    report = _reporter(progress)
    entries = []
    total_start = time.perf_counter()
    for ci, cut in enumerate(cuts):
        cut_start, cut_cpu = time.perf_counter(), time.process_time()
        ev = _CutEvaluator(
            part, cut, samples, references, search_targets, outputs, provider_list, threads
        )
        label = f"cut {ci + 1}/{len(cuts)} {cut.name[-32:]}"
        entry, evaluations = _search_cut(
            ev,
            cut,
            families,
            calib_idx,
            hold_idx,
            target_list,
            seed,
            backoff,
            refine,
            progress,
            label,
        )
        fitted = _fit_transform(ev, calib_idx, transform_dir) if transform else None
        if fitted is not None:  # the same search on the transform's coefficients
            with_t, n_t = _search_cut(
                ev, cut, families, calib_idx, hold_idx, target_list, seed, backoff, refine,
                progress, label + " klt",
            )  # fmt: skip
            ev.split.transforms = {}
            evaluations += n_t
            fitted["bits_per_element"] = {
                "with": with_t.get("bits_per_element"),
                "without": entry.get("bits_per_element"),
            }
            if _cheaper(with_t, entry):
                entry = with_t
                entry["transform"] = fitted
            else:
                entry["transform_tried"] = fitted  # kept for the record; not used
        if estimator and entry["status"] != "unreachable":
            _fit_estimator(ev, entry, calib_idx, hold_idx, target_list, seed, transform_dir)
        entry["search_seconds"] = round(time.perf_counter() - cut_start, 2)
        entry["search_cpu_seconds"] = round(time.process_time() - cut_cpu, 2)
        entry["evaluations"] = evaluations
        entries.append(entry)
        report(_entry_line(entry, target_list))
    return {
        "slicer_settings": SETTINGS_VERSION,
        "model": {
            "name": model_name,
            "fingerprint": fingerprint(part.model, part.external_dir),
            "inputs": {n: list(np.shape(samples[0][n])) for n in feed_names},
            "outputs": outputs,
        },
        "targets": [t.to_json() for t in target_list],
        "data": {
            "source": data_label,
            "count": len(samples),
            "calibration": len(calib_idx),
            "holdout": holdout,
            "holdout_count": len(hold_idx) if n_hold else 0,
            "seed": seed,
            **({"groups": len(set(groups)), "grouped_holdout": True} if groups else {}),
            "guard": guard,
            "backoff": backoff,
            "refine": refine,
        },
        "codec": {
            "families": [f.name for f in families],
            "slicer_version": _version(),
            **({"estimator": "lmmse"} if estimator else {}),
        },
        "seconds": round(time.perf_counter() - total_start, 2),
        "cuts": entries,
    }


def _search_cut(
    ev: _CutEvaluator,
    cut: Cut,
    families: Sequence[Family],
    calib_idx: Sequence[int],
    hold_idx: Sequence[int],
    targets: Sequence[Target],
    seed: int,
    backoff: int,
    refine: int,
    progress: bool | Callable[[str], Any],
    label: str,
) -> tuple[dict[str, Any], int]:
    """Every family's search on one cut (with the evaluator's current transforms); the cut's
    settings entry and the number of evaluations."""
    points: list[Point] = []
    bar = _bar(progress, label)

    def evaluate(params: CodecParams) -> Point:
        cheapest = min((q.bits_per_element for q in points if q.chosen), default=None)
        if cheapest is not None:
            estimate = ev.estimate_bits(params, calib_idx[:ESTIMATE_INPUTS])
            if estimate > cheapest * 1.05:  # cannot win: skip the tail runs
                p = Point(params, estimate, 0.0, 0, {}, False, False, skipped=True)
                points.append(p)
                bar.update(1)
                return p
        p, _ = ev.evaluate(params, calib_idx)
        points.append(p)
        bar.update(1)
        bar.set_postfix_str(
            f"{setting_text(p.params.to_json())} {p.bits_per_element:.2f} b/el "
            f"{'ok' if p.passed else 'miss'}"
        )
        return p

    evaluate.backoff = backoff
    evaluate.refine = refine
    evaluate.estimate = lambda params: ev.estimate_bits(params, calib_idx[:ESTIMATE_INPUTS])
    for fam in families:
        fam.search(evaluate, ev.shapes)
    bar.close()
    return _cut_entry(cut, ev, points, hold_idx, calib_idx, targets, seed), len(points)


def _cheaper(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Is entry ``a`` a better choice than ``b``: a better status (ok > interval-misses >
    unreachable), then fewer bits per element."""
    rank = {s: i for i, s in enumerate(("ok", "interval-misses", "unreachable"))}
    if rank[a["status"]] != rank[b["status"]]:
        return rank[a["status"]] < rank[b["status"]]
    if a["status"] == "unreachable":
        return False
    return a["bits_per_element"] < b["bits_per_element"]


def _largest_coded(ev: _CutEvaluator) -> str | None:
    """The cut's largest tensor that goes through the codec (None: nothing is coded)."""
    from .transport import coded_names

    first = ev.cut_values[0]
    coded = coded_names({n: v.shape for n, v in first.items()},
                        {n: str(v.dtype) for n, v in first.items()})  # fmt: skip
    return max(coded, key=lambda n: first[n].size) if coded else None


def _save_artifact(obj: Any, folder: str | os.PathLike | None, cache: str, prefix: str) -> Path:
    """Write a transform / estimator as ``PREFIX-<fingerprint>.npz`` in ``folder`` (default:
    the model cache's ``cache`` folder); its path."""
    if folder is None:
        from .zoo import cache_dir

        folder = cache_dir() / cache
    path = Path(folder) / f"{prefix}-{obj.fingerprint()[7:23]}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    obj.save(path)
    return path


def _fit_transform(
    ev: _CutEvaluator, calib_idx: Sequence[int], folder: str | os.PathLike | None
) -> dict[str, Any] | None:
    """Fit the KLT of the cut's largest coded tensor on the calibration inputs, install it in
    the evaluator's split and save it; the entry's ``transform`` object (None: nothing coded)."""
    from .transform import CutTransform

    name = _largest_coded(ev)
    if name is None:
        return None
    t = CutTransform.fit(ev.cut_values[i][name] for i in calib_idx)
    path = _save_artifact(t, folder, "transforms", "klt")
    ev.split.transforms = {name: t}
    return {
        "tensor": name,
        "file": str(path.resolve()),
        "fingerprint": t.fingerprint(),
        "kind": "klt",
        "vectors": t.count,
        "coding_gain_bits": round(t.coding_gain_bits(), 4),
    }


def _version() -> str:
    try:
        import slicer

        return str(getattr(slicer, "__version__", "unknown"))
    except ImportError:  # pragma: no cover
        return "unknown"


def _cut_entry(
    cut: Cut,
    ev: _CutEvaluator,
    points: Sequence[Point],
    hold_idx: Sequence[int],
    calib_idx: Sequence[int],
    targets: Sequence[Target],
    seed: int,
) -> dict[str, Any]:
    passing = [p for p in points if p.passed and p.chosen]
    points = [p for p in points if not p.skipped] or list(points)
    if not passing and points and not any(p.complete for p in points):
        # Every evaluation stopped early: measure the most generous setting tried in full so
        # that "the best value reached" is a real number, not a partial one.
        generous = max(points, key=lambda p: p.bits_per_element)
        points = [*points, ev.evaluate(generous.params, calib_idx, early_stop=False)[0]]
    trace = [p.to_json() for p in points]
    base = {
        "index": cut.index,
        "name": cut.name,
        "raw_bytes": ev.raw_bytes,
        "trace": trace,
    }
    if not passing:
        complete = [p for p in points if p.complete]

        def closeness(p: Point) -> float:
            worst = 0.0
            for t in targets:
                v = p.metrics.get(t.metric, float("nan"))
                gap = (t.value - v) if t.higher_is_better else (v - t.value)
                worst = max(worst, gap if math.isfinite(gap) else float("inf"))
            return worst

        best = min(complete, key=closeness) if complete else None
        return {
            **base,
            "status": "unreachable",
            "best": {
                "params": best.params.to_json() if best else None,
                "bits_per_element": best.bits_per_element if best else None,
                "metrics": best.metrics if best else {},
            },
        }
    chosen = min(passing, key=lambda p: (p.bits_per_element, -p.params.bits))
    held_point, holdout, clears = _held_out(ev, chosen.params, hold_idx, targets, seed)
    return {
        **base,
        "status": "ok" if clears else "interval-misses",
        "params": chosen.params.to_json(),
        "bits_per_element": chosen.bits_per_element,
        "payload_bytes": chosen.payload_bytes,
        "payload_bytes_max": max(chosen.payload_bytes_max, held_point.payload_bytes_max),
        "calibration": chosen.metrics,
        "holdout": holdout,
        "holdout_bits_per_element": held_point.bits_per_element,
        "holdout_independent": list(hold_idx) != list(calib_idx),
    }


def _held_out(
    ev: _CutEvaluator,
    params: CodecParams,
    hold_idx: Sequence[int],
    targets: Sequence[Target],
    seed: int,
) -> tuple[Point, dict[str, Any], bool]:
    """A setting measured in full on the held-out split: the point, each target's value with
    its bootstrap 95 % interval, and whether every interval clears its target."""
    held_point, per = ev.evaluate(params, hold_idx, early_stop=False)
    holdout: dict[str, Any] = {}
    clears = True
    for t in targets:
        lo, hi = bootstrap_interval(t.metric, per[t.metric], seed=seed)
        holdout[t.metric] = {"value": held_point.metrics[t.metric], "low": lo, "high": hi}
        clears &= t.met(lo) if t.higher_is_better else t.met(hi)
    return held_point, holdout, clears


def _fit_estimator(
    ev: _CutEvaluator,
    entry: dict[str, Any],
    calib_idx: Sequence[int],
    hold_idx: Sequence[int],
    targets: Sequence[Target],
    seed: int,
    folder: str | os.PathLike | None,
) -> None:
    """Fit the decoder-side estimator of the entry's largest coded tensor on the calibration
    split at the entry's chosen setting (its transform too), measure the held-out split with
    it, and record it in the entry: as ``estimator`` (the receiver applies it) when no target
    is worse on the held-out split, else as ``estimator_tried``."""
    from .estimator import EstimatorFit
    from .settings import params_from_json, transforms_for_entry

    name = _largest_coded(ev)
    if name is None:
        return
    params = params_from_json(entry["params"])
    ev.split.transforms = transforms_for_entry(entry)
    ev.split.estimators = {}
    acc = None
    for i in calib_idx:
        x = ev.cut_values[i][name]
        packet = encode_values(ev.cut_values[i], params, ev.split.transforms)
        y = decode_packet(packet, ev.split.transforms)[0][name]
        if acc is None:
            layout = "map" if x.ndim == 4 else "rows"
            acc = EstimatorFit(
                layout, x.shape[-3 if layout == "map" else -1], 3 if layout == "map" else 1
            )
        acc.add(x, y)
    est = acc.solve()
    path = _save_artifact(est, folder, "estimators", "lmmse")
    ev.split.estimators = {name: est}
    try:
        _, holdout, clears = _held_out(ev, params, hold_idx, targets, seed)
    finally:
        ev.split.estimators = {}
        ev.split.transforms = {}
    better = all(
        (holdout[t.metric]["value"] >= entry["holdout"][t.metric]["value"])
        if t.higher_is_better
        else (holdout[t.metric]["value"] <= entry["holdout"][t.metric]["value"])
        for t in targets
    )
    record = {
        "tensor": name,
        "file": str(path.resolve()),
        "fingerprint": est.fingerprint(),
        "kind": "lmmse",
        "layout": est.layout,
        "window": est.window,
        "positions": est.count,
        "holdout": {"with": holdout, "without": entry["holdout"]},
    }
    if better:
        entry["estimator"] = record
        entry["holdout"] = holdout
        entry["status"] = "ok" if clears else "interval-misses"
    else:
        entry["estimator_tried"] = record  # kept for the record; not applied


def _entry_line(entry: Mapping[str, Any], targets: Sequence[Target]) -> str:
    head = f"#{entry['index']} {entry['name']}"
    if entry["status"] == "unreachable":
        best = entry["best"]
        vals = ", ".join(
            f"{t.metric} {_fmt_metric(t.metric, best['metrics'].get(t.metric))}" for t in targets
        )
        return f"{head}: UNREACHABLE ({', '.join(t.text() for t in targets)}); best {vals}"
    knob = setting_text(entry["params"]) + estimator_text(entry)
    held = ", ".join(
        f"{m} {_fmt_metric(m, h['value'])} [{_fmt_metric(m, h['low'])}, "
        f"{_fmt_metric(m, h['high'])}]"
        for m, h in entry["holdout"].items()
    )
    mark = "" if entry["status"] == "ok" else "  <- interval does not clear the target"
    return f"{head}: {knob}: {entry['bits_per_element']:.3f} b/el; held-out {held}{mark}"


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(progress: bool | Callable[[str], Any], desc: str):  # noqa: ANN202
    if progress is not True:
        return _NoBar()
    import sys

    from tqdm import tqdm

    return tqdm(desc=desc, unit="setting", file=sys.stderr, leave=False)


def _reporter(progress: bool | Callable[[str], Any]) -> Callable[[str], Any]:
    if callable(progress):
        return progress
    if progress:
        import sys

        return lambda line: print(line, file=sys.stderr)
    return lambda line: None


# ------------------------------------------------------------------------------ plot


def plot_settings(settings: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Bits per element against each target metric, one panel per target, one colour per cut;
    the chosen setting of each cut is circled, the target drawn as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = [Target(t["metric"], float(t["value"])) for t in settings["targets"]]
    fig, axes = plt.subplots(
        1, len(targets), figsize=(max(7.5, 6 * len(targets)), 4.8), squeeze=False
    )
    for ax, t in zip(axes[0], targets, strict=True):
        for k, entry in enumerate(settings["cuts"]):
            color = f"C{k % 10}"
            trace = [p for p in entry.get("trace", []) if t.metric in p.get("metrics", {})]
            ok = sorted((p for p in trace if p["passed"]), key=lambda p: p["bits_per_element"])
            bad = [p for p in trace if not p["passed"]]
            ax.plot(
                [p["bits_per_element"] for p in ok],
                [p["metrics"][t.metric] for p in ok],
                "o",
                ms=3,
                alpha=0.6,
                color=color,
                label=f"#{entry['index']}",
            )
            # Failing settings: the value when the search stopped (early stop: partial).
            ax.plot(
                [p["bits_per_element"] for p in bad],
                [p["metrics"][t.metric] for p in bad],
                "x",
                ms=4,
                alpha=0.5,
                color=color,
            )
            if entry["status"] != "unreachable":
                held = entry["holdout"][t.metric]
                ax.errorbar(
                    [entry["bits_per_element"]],
                    [held["value"]],
                    yerr=[[held["value"] - held["low"]], [held["high"] - held["value"]]],
                    fmt="D",
                    ms=7,
                    mfc="none",
                    capsize=3,
                    color=color,
                )
        ax.axhline(t.value, color="k", lw=0.8, ls="--")
        ax.set_xlabel("bits per element (real streams)")
        ax.set_ylabel(t.metric)
        ax.set_title(t.text())
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    name = settings["model"].get("name") or "model"
    fig.suptitle(
        f"{name}: search per cut (o passed, x failed on the calibration split)\n"
        "diamond: chosen setting, held-out value with its 95 % interval",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
