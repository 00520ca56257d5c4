"""Profile a model on this machine for planning: per cut, device latency, memory, IF size,
and the codec's time (calibrated lookup table). The result is plain JSON, so a plan can be
made later without the model at hand.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import onnx

from .graph import Cut, Partitioner
from .providers import make_session, resolve_providers
from .transport import CodecParams, coded_names

PROFILE_VERSION = 1
CALIBRATION_SIZES = (1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20)
FIDELITY_SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95)


def _all_tensor_sizes(
    part: Partitioner, inputs: Mapping[str, np.ndarray], providers: list[str], threads: int
) -> dict[str, tuple[tuple[int, ...], str]]:
    """Concrete shape and dtype of every computed tensor, from one run of the whole model."""
    model = onnx.ModelProto()
    model.CopyFrom(part.model)
    idx = part._index  # noqa: SLF001 - same package
    existing = {o.name for o in model.graph.output}
    for i, node in enumerate(model.graph.node):
        if i in idx.constant_nodes:
            continue
        for name in node.output:
            if name and name not in existing and name in idx.value_types:
                vi = onnx.ValueInfoProto(name=name)
                vi.type.CopyFrom(idx.value_types[name])
                # Drop declared dims: exporters sometimes declare stale static shapes.
                vi.type.tensor_type.ClearField("shape")
                model.graph.output.append(vi)
                existing.add(name)
    sess = make_session(model, providers, threads, part.external_dir)
    names = [o.name for o in sess.get_outputs()]
    feeds = {i.name: inputs[i.name] for i in sess.get_inputs()}
    values = sess.run(names, feeds)
    out = {n: (tuple(v.shape), str(v.dtype)) for n, v in zip(names, values, strict=True)}
    for name, value in inputs.items():
        out[name] = (tuple(value.shape), str(value.dtype))
    return out


def _peak_activation_bytes(
    part: Partitioner, sizes: Mapping[str, tuple[tuple[int, ...], str]]
) -> dict[int, int]:
    """Peak live activation bytes of the head ending at each compute node.

    Sequential execution, no in-place reuse: while node i runs, every tensor produced at or
    before i and still needed at or after i is live. For a head ending at node ℓ these are the
    same tensors as in the whole model (what outlives ℓ is the cut, kept until the end), so
    the head's peak is the running maximum of the whole model's live bytes.
    """
    idx = part._index  # noqa: SLF001 - same package
    nodes = part.model.graph.node

    def nbytes(name: str) -> int:
        shape, dtype = sizes[name]
        return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize

    produced_at: dict[str, int] = {n: -1 for n in idx.graph_inputs if n in sizes}
    last_use: dict[str, int] = {}
    for i, inputs in enumerate(idx.node_inputs):
        if i in idx.constant_nodes:
            continue
        for name in inputs:
            if name in sizes and name not in idx.constant_tensors:
                last_use[name] = max(last_use.get(name, i), i)
        for name in nodes[i].output:
            if name in sizes:
                produced_at[name] = i
    end = len(nodes)
    for name in idx.graph_outputs:
        last_use[name] = end
    # Sweep: +bytes at production, −bytes after last use.
    delta = np.zeros(end + 3, dtype=np.int64)
    for name, p in produced_at.items():
        b = nbytes(name)
        delta[p + 1] += b
        delta[last_use.get(name, p) + 2] -= b
    # live[i]: bytes of the tensors with produced ≤ i ≤ last use, i.e. live while node i runs
    # (graph inputs count from node 0 on).
    live = np.cumsum(delta)[1:]
    peaks: dict[int, int] = {}
    running = 0
    for i in range(end):
        running = max(running, int(live[i]))
        peaks[i] = running
    return peaks


def calibrate_codec(
    params: CodecParams, sizes: Sequence[int] = CALIBRATION_SIZES, repeats: int = 3, seed: int = 0
) -> dict[str, Any]:
    """Median encode / decode time of the codec for float32 tensors of several sizes."""
    import slicer

    rng = np.random.default_rng(seed)
    enc, dec = [], []
    for n in sizes:
        x = rng.standard_normal(n).astype(np.float32)
        e_times, d_times = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            stream = slicer.encode(x, **params.kwargs_for(x))
            t1 = time.perf_counter()
            slicer.decode(stream)
            t2 = time.perf_counter()
            e_times.append(t1 - t0)
            d_times.append(t2 - t1)
        enc.append(statistics.median(e_times))
        dec.append(statistics.median(d_times))
    return {"elements": list(sizes), "encode_s": enc, "decode_s": dec, "params": params.to_json()}


def codec_seconds(table: Mapping[str, Any], elements: int, kind: str = "encode_s") -> float:
    """ζ for ``elements`` values: log-log interpolation in the calibration table."""
    if elements <= 0:
        return 0.0
    xs = np.log(np.asarray(table["elements"], dtype=np.float64))
    ys = np.log(np.maximum(np.asarray(table[kind], dtype=np.float64), 1e-9))
    x = np.log(float(elements))
    if x <= xs[0]:
        return float(np.exp(ys[0]))  # fixed costs dominate small tensors
    if x >= xs[-1]:
        slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
        return float(np.exp(ys[-1] + max(slope, 1.0) * (x - xs[-1])))
    return float(np.exp(np.interp(x, xs, ys)))


def select_cuts(
    part: Partitioner, which: str | Sequence[int] = "simple", max_cuts: int = 24
) -> list[Cut]:
    """Cuts worth profiling: "simple" (one bulky tensor; all cuts if none), "all", or indices.

    More than ``max_cuts`` are thinned evenly, always keeping the deepest.
    """
    cuts = part.cuts()
    if isinstance(which, str):
        if which == "all":
            chosen = list(cuts)
        elif which == "simple":
            # Of consecutive simple cuts carrying the same feature (the hidden state while
            # shape scalars are computed beside it), keep the first: it is named after the
            # feature itself ("/model.layers.11/add_2229"), and the later ones differ only by
            # a few cheap side computations.
            simple = [c for c in cuts if c.simple]
            chosen = [
                c for i, c in enumerate(simple) if i == 0 or simple[i - 1].feature != c.feature
            ] or list(cuts)
        else:
            raise ValueError(f"cut selection must be 'simple', 'all' or indices, got {which!r}")
    else:
        chosen = [part.find_cut(int(i)) for i in which]
    if max_cuts and len(chosen) > max_cuts:
        picks = np.linspace(0, len(chosen) - 1, max_cuts).round().astype(int)
        chosen = [chosen[i] for i in sorted(set(picks.tolist()))]
    return chosen


def profile_model(
    model: str | os.PathLike | onnx.ModelProto | Partitioner,
    inputs: Mapping[str, np.ndarray],
    *,
    cuts: str | Sequence[int] = "simple",
    max_cuts: int = 24,
    repeats: int = 5,
    providers: Sequence[str] | str | None = None,
    threads: int = 0,
    codec: CodecParams | None = None,
    fidelity_sparsities: Sequence[float] = (),
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Measure what the planner needs. See the module docstring; returns a JSON-able dict.

    ``fidelity_sparsities``: when given, each profiled cut is also run through the codec at
    these sparsities and the tail's outputs compared to the uncut model (the planner's
    fidelity floor then uses these measurements).
    """
    from .runner import SplitModel

    part = model if isinstance(model, Partitioner) else Partitioner(model)
    provider_list = resolve_providers(providers)
    codec = codec or CodecParams()
    sizes = _all_tensor_sizes(part, inputs, provider_list, threads)
    peaks = _peak_activation_bytes(part, sizes)
    chosen = select_cuts(part, cuts, max_cuts)
    full = make_session(part.model, provider_list, threads, part.external_dir)
    out_names = [o.name for o in full.get_outputs()]
    feeds = {i.name: inputs[i.name] for i in full.get_inputs()}
    reference = dict(zip(out_names, full.run(out_names, feeds), strict=True))
    full_times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        full.run(out_names, feeds)
        full_times.append(time.perf_counter() - t0)
    records = []
    provider_used = full.get_providers()[0]
    for n, cut in enumerate(chosen):
        if progress:
            progress(n, len(chosen), cut.name)
        split = SplitModel(part, cut, providers=provider_list, threads=threads)
        split._full = full  # noqa: SLF001 - reuse the uncut session
        head_feeds = {i.name: inputs[i.name] for i in split.head.get_inputs()}
        split.head.run(None, head_feeds)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            split.head.run(None, head_feeds)
            times.append(time.perf_counter() - t0)
        shapes = {t.name: sizes[t.name][0] for t in cut.tensors}
        dtypes = {t.name: sizes[t.name][1] for t in cut.tensors}
        coded = coded_names(shapes, dtypes)
        raw = sum(
            int(np.prod(s, dtype=np.int64)) * np.dtype(dtypes[n_]).itemsize
            for n_, s in shapes.items()
        )
        record: dict[str, Any] = {
            "index": cut.index,
            "name": cut.name,
            "node_index": cut.node_index,
            "single_tensor": cut.single,
            "simple": cut.simple,
            "tensors": [
                {"name": t, "shape": list(shapes[t]), "dtype": dtypes[t], "coded": t in coded}
                for t in shapes
            ],
            "head_param_bytes": cut.head_param_bytes,
            "peak_activation_bytes": peaks[cut.node_index],
            "memory_bytes": cut.head_param_bytes + peaks[cut.node_index],
            "raw_bytes": raw,
            "coded_elements": sum(int(np.prod(shapes[t], dtype=np.int64)) for t in coded),
            "device_latency_s": statistics.median(times),
        }
        if fidelity_sparsities:
            record["fidelity"] = {}
            for s in fidelity_sparsities:
                params = CodecParams(**{**codec.to_json(), "sparsity": float(s)})
                result = split.run(inputs, params, reference=reference)
                record["fidelity"][f"{s:g}"] = {
                    "cosine": result.fidelity.get("cosine"),
                    "rel_l2": result.fidelity.get("rel_l2"),
                    **(
                        {"top1_agreement": result.fidelity["top1_agreement"]}
                        if "top1_agreement" in result.fidelity
                        else {}
                    ),
                    "encoded_bytes": result.packet.encoded_bytes,
                }
        records.append(record)
        del split
    if progress:
        progress(len(chosen), len(chosen), "codec calibration")
    table = calibrate_codec(codec)
    for record in records:  # ζ of Eq. 1 for this cut's IF, from the calibrated table
        record["codec_encode_s"] = codec_seconds(table, record["coded_elements"])
    return {
        "profile_version": PROFILE_VERSION,
        "model": str(model) if isinstance(model, (str, os.PathLike)) else None,
        "provider": provider_used,
        "threads": threads,
        "repeats": repeats,
        "inputs": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in inputs.items()},
        "full_latency_s": statistics.median(full_times),
        "model_param_bytes": part.param_bytes(),
        "num_cuts": len(part.cuts()),
        "codec_table": table,
        "cuts": records,
    }


def save_profile(profile: Mapping[str, Any], path: str | os.PathLike) -> None:
    with open(path, "w") as f:
        json.dump(profile, f, indent=1)


def load_profile(path: str | os.PathLike) -> dict[str, Any]:
    with open(path) as f:
        data = json.load(f)
    if data.get("profile_version") != PROFILE_VERSION or "cuts" not in data:
        raise ValueError(f"{path} is not a SLICER split profile (version {PROFILE_VERSION})")
    return data
