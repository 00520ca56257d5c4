"""The (w, ℓ) planner of paper Eqs. 4–6 and the fits of its measured profile, on synthetic
profiles (no model needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from slicer.llm.export import ModelInfo
from slicer.llm.messages import FRAMING_BYTES
from slicer.llm.planner import (
    ARProfile,
    InfeasibleError,
    evaluate,
    plan,
    row_bytes_for,
)
from slicer.llm.profile import (
    MIN_MARGIN,
    TOKEN_BYTES,
    MemoryModel,
    fit_layers,
    fit_memory,
    load_profile,
    predict_graph,
)
from slicer.split.link import Link

INFO = ModelInfo(
    name="toy",
    arch="llama",
    layers=6,
    hidden=64,
    kv_heads=2,
    head_dim=16,
    vocab=1000,
    fingerprint="0123456789abcdef",
    layer_params=10_000,
    embed_params=64_000,
    head_params=64_064,
    bos_id=None,
    eos_ids=(),
    chat_template=False,
)
LINK = Link(rate_bps=1e6)


def _profile(full_call=2.0, full_row=1.0, device_factor=1.0, codec="raw") -> ARProfile:
    return ARProfile.from_full_model(
        INFO, full_call, full_row, row_bytes_for(codec, INFO.hidden), device_factor=device_factor
    )


def test_eq5_by_hand() -> None:
    prof = _profile()
    r = evaluate(prof, cut=2, handover=3, prompt_len=5, max_new=10, link=LINK)
    share = 2 * 10_000 / (6 * 10_000 + 64_064)
    link_ms = lambda b: 1e3 * 8 * b / 1e6 * LINK.transmissions  # noqa: E731
    rows0 = 5 + 3
    bytes0 = FRAMING_BYTES + 4 * 64 * rows0
    # device prefill of the prompt (2 + 5) then 2 more local steps (2 + 1 each)
    local = (2 + 5) + 2 * (2 + 1)
    head = 1.0 + share * rows0
    assert r["latency_ms"] == pytest.approx(local + head + link_ms(bytes0))
    tail0 = 1.0 + (1 - share) * rows0
    step = (1.0 + share) + link_ms(FRAMING_BYTES + 4 * 64) + (1.0 + (1 - share))
    assert r["total_ms"] == pytest.approx(r["latency_ms"] + tail0 + 6 * step)
    kv = 2 * 2 * 16 * 4
    weights = 4 * (64_000 + 2 * 10_000)
    full = 4 * (64_000 + 6 * 10_000 + 64_064)
    assert r["memory_bytes"] == pytest.approx(weights + kv * 2 * 15 + full + kv * 6 * rows0)


@given(
    deadline=st.floats(1.0, 500.0),
    memory=st.floats(2e5, 2e6),
    factor=st.floats(0.2, 5.0),
    rate=st.floats(1e5, 1e8),
)
def test_choice_is_the_best_feasible(deadline, memory, factor, rate) -> None:
    prof = _profile(device_factor=factor)
    link = Link(rate_bps=rate)
    rows = [evaluate(prof, c, w, 4, 8, link) for c in range(1, INFO.layers) for w in range(8)]
    feasible = [
        r for r in rows if r["latency_ms"] <= deadline * 1e-3 * 1e3 and r["memory_bytes"] <= memory
    ]
    if not feasible:
        with pytest.raises(InfeasibleError) as err:
            plan(
                prof,
                prompt_len=4,
                max_new=8,
                link=link,
                deadline_s=deadline * 1e-3,
                memory_bytes=memory,
            )
        fits = [r for r in rows if r["memory_bytes"] <= memory]
        assert err.value.binding == ("deadline" if fits else "memory")
        return
    p = plan(
        prof, prompt_len=4, max_new=8, link=link, deadline_s=deadline * 1e-3, memory_bytes=memory
    )
    assert p.latency_ms <= deadline and p.memory_bytes <= memory
    assert p.total_ms == pytest.approx(min(r["total_ms"] for r in feasible))
    assert p.considered == len(rows)


def test_memory_binds_and_says_so() -> None:
    with pytest.raises(InfeasibleError, match="memory binds") as err:
        plan(_profile(), prompt_len=4, max_new=8, link=LINK, memory_bytes=1000)
    assert err.value.binding == "memory"


def test_deadline_binds_and_says_so() -> None:
    with pytest.raises(InfeasibleError, match="deadline binds") as err:
        plan(_profile(), prompt_len=4, max_new=8, link=LINK, deadline_s=1e-6)
    assert err.value.binding == "deadline"


def test_memory_between_head_and_full_forbids_local_steps() -> None:
    prof = _profile()
    w0 = evaluate(prof, 5, 0, 4, 8, LINK)["memory_bytes"]
    w1 = evaluate(prof, 1, 1, 4, 8, LINK)["memory_bytes"]
    assert w0 < w1
    p = plan(prof, prompt_len=4, max_new=8, link=LINK, memory_bytes=(w0 + w1) / 2)
    assert p.handover == 0


def test_slow_link_moves_work_to_the_device() -> None:
    """On a device 5x slower than the server a fast link sends everything up at once; a slow
    one makes each step's upload dear and keeps the steps local."""
    prof = _profile(codec="raw", device_factor=5.0)
    fast = plan(prof, prompt_len=4, max_new=8, link=Link(rate_bps=2e7))
    slow = plan(prof, prompt_len=4, max_new=8, link=Link(rate_bps=1e4))
    assert fast.handover == 0
    assert slow.handover == 7


def test_slicer_row_bytes_bound_holds() -> None:
    import slicer

    size = row_bytes_for("slicer", 576, {"sparsity": 0.5, "bits": 4})
    x = np.random.default_rng(3).standard_normal((1, 576)).astype(np.float32)
    real = FRAMING_BYTES + len(slicer.encode(x, sparsity=0.5, bits=4, groups="rows"))
    assert real <= size(10, 1)
    assert size(10, 1) == size(3, 1)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"prompt_len": 0}, "prompt_len"),
        ({"max_new": True}, "max_new"),
        ({"deadline_s": 0.0}, "deadline"),
        ({"memory_bytes": -1.0}, "memory"),
        ({"cuts": [0]}, "cuts"),
        ({"handovers": [8]}, "handover"),
    ],
)
def test_bad_arguments(kw, match) -> None:
    args = {"prompt_len": 4, "max_new": 8, "link": LINK, **kw}
    with pytest.raises(ValueError, match=match):
        plan(_profile(), **args)
    with pytest.raises(ValueError, match="device_factor"):
        _profile(device_factor=0.0)
    with pytest.raises(ValueError, match="codec"):
        row_bytes_for("gzip", 4)
    assert math.isfinite(plan(_profile(), prompt_len=4, max_new=8, link=LINK).total_ms)


def test_link_always_in_outage_is_infeasible() -> None:
    """R far above what W carries: every try fails, no finite latency."""
    with pytest.raises(InfeasibleError, match="outage"):
        plan(_profile(), prompt_len=4, max_new=8, link=Link(rate_bps=1e10))


# --------------------------------------------------------------------------- measured profiles

# a per-layer truth: (call, row, past) ms for the head's embedding, the tail's LM head, a layer
TRUE = {"head": (0.4, 0.02, 0.0), "tail": (6.0, 0.5, 0.001), "layer": (0.9, 0.06, 0.0006)}


def _graphs(cuts, noise=0.0, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for cut in cuts:
        for part, layers in (("head", cut), ("tail", INFO.layers - cut)):
            terms = [
                TRUE[part][i] + layers * TRUE["layer"][i] for i in range(3)
            ]  # exact, then multiplicative noise
            terms = [t * (1 + noise * rng.standard_normal()) for t in terms]
            out[f"{part}-{cut}"] = dict(zip(("call", "row", "past"), terms, strict=True))
    return out


def test_layer_fit_recovers_a_per_layer_model() -> None:
    fit = fit_layers(INFO, _graphs([1, 3, 5]))
    for part in ("head", "tail", "layer"):
        for i, term in enumerate(("call", "row", "past")):
            assert fit[part][term] == pytest.approx(TRUE[part][i], abs=1e-9)
    # every cut, measured or not, is predicted from the fit
    for cut in range(1, INFO.layers):
        want = [TRUE["tail"][i] + (INFO.layers - cut) * TRUE["layer"][i] for i in range(3)]
        assert predict_graph(INFO, fit, "tail", cut) == pytest.approx(want)


@given(seed=st.integers(0, 2**31 - 1))
def test_layer_fit_is_close_under_noise(seed) -> None:
    """5 % noise on three measured cuts: unmeasured cuts within 15 % of the truth."""
    fit = fit_layers(INFO, _graphs([1, 3, 5], noise=0.05, seed=seed))
    for cut in (2, 4):
        for part, layers in (("head", cut), ("tail", INFO.layers - cut)):
            got = predict_graph(INFO, fit, part, cut)
            want = TRUE[part][0] + layers * TRUE["layer"][0]
            assert got[0] == pytest.approx(want, rel=0.15)


def test_layer_fit_needs_two_cuts() -> None:
    with pytest.raises(ValueError, match="two or more cuts"):
        fit_layers(INFO, _graphs([3]))


def _memory_points(peaks_noise=(0.0,), fp32_extra=500e6) -> list[dict]:
    base, factor = 80e6, 0.9
    points = []
    for noise in peaks_noise:
        for cut in (1, 3, 5):
            w = 4.0 * (INFO.embed_params + cut * INFO.layer_params) * 1000
            kv = 1e5 * cut
            points.append(
                {
                    "cut": cut,
                    "device_model": None,
                    "head_weights": w,
                    "kv_bytes": kv,
                    "peak": (base + factor * w + 2 * kv) * (1 + noise * (cut - 3) / 2),
                }
            )
        points.append(
            {
                "cut": 1,
                "device_model": "fp32",
                "head_weights": points[0]["head_weights"],
                "kv_bytes": 3e5,
                "peak": base + factor * points[0]["head_weights"] + fp32_extra + 6e5,
            }
        )
    return points


def test_memory_fit_recovers_and_covers_every_run() -> None:
    exact = fit_memory(_memory_points())
    assert exact.base == pytest.approx(80e6) and exact.factor == pytest.approx(0.9)
    assert dict(exact.extra)["fp32"] == pytest.approx(500e6)
    assert exact.margin == MIN_MARGIN  # nothing to cover: the floor
    noisy = _memory_points(peaks_noise=(0.0, 0.08, -0.04))
    model = fit_memory(noisy)
    for p in noisy:
        assert p["peak"] <= model.predict(p["head_weights"], p["kv_bytes"], p["device_model"])
    assert model.margin > MIN_MARGIN
    with pytest.raises(ValueError, match="two or more cuts"):
        fit_memory([p for p in noisy if p["cut"] == 1])


def _measured_profile(memory: MemoryModel | None = None) -> dict:
    fit = fit_layers(INFO, _graphs([1, 3, 5]))
    memory = memory or fit_memory(_memory_points())
    return {
        "fingerprint": INFO.fingerprint,
        "device_model": "fp32",
        "cuts": [1, 3, 5],
        "fit": fit,
        "graphs": {"full": {"call": 6.5, "row": 0.9, "past": 0.004}},
        "memory": memory.to_json(),
    }


def test_measured_profile_times_and_memory_in_the_plan() -> None:
    data = _measured_profile()
    prof = ARProfile.from_profile(INFO, data, row_bytes_for("raw", INFO.hidden))
    assert prof.head[2] == pytest.approx(
        tuple(TRUE["head"][i] + 2 * TRUE["layer"][i] for i in range(3))
    )
    r = evaluate(prof, cut=2, handover=0, prompt_len=5, max_new=4, link=LINK)
    # head over 5 prompt rows at P = 0, then 3 one-row steps at P = 5, 6, 7
    h, t = prof.head[2], prof.tail[2]
    steps = sum(h[0] + h[1] + h[2] * p + t[0] + t[1] + t[2] * p for p in (5, 6, 7))
    link_ms = lambda b: 1e3 * 8 * b / 1e6 * LINK.transmissions  # noqa: E731
    up = link_ms(FRAMING_BYTES + 4 * 64 * 5) + 3 * link_ms(FRAMING_BYTES + 4 * 64)
    want = h[0] + 5 * h[1] + t[0] + 5 * t[1] + steps + up
    assert r["total_ms"] == pytest.approx(want)
    mem = fit_memory(_memory_points())
    kv = 2 * 2 * 16 * 4 * 2 * (5 + 4)
    pages = TOKEN_BYTES * (5 + 4)  # each distinct token may map one embedding row
    want_mem = (mem.base + mem.factor * prof.head_bytes[2] + 2 * kv + pages) * (1 + mem.margin)
    assert r["memory_bytes"] == pytest.approx(want_mem)
    w1 = evaluate(prof, cut=2, handover=1, prompt_len=5, max_new=4, link=LINK)
    assert w1["memory_bytes"] - r["memory_bytes"] > 500e6  # the device model's measured extra


def test_a_cut_ruled_out_by_memory_says_so() -> None:
    """M_ar between the footprints of cut 2 and cut 4: a fixed cut 4 is infeasible and memory
    binds; planning over every cut picks one that fits and counts what memory ruled out."""
    prof = ARProfile.from_profile(INFO, _measured_profile(), row_bytes_for("raw", INFO.hidden))
    need = {c: evaluate(prof, c, 0, 4, 8, LINK)["memory_bytes"] for c in range(1, 6)}
    assert all(need[c] < need[c + 1] for c in range(1, 5))
    budget = (need[2] + need[3]) / 2
    with pytest.raises(InfeasibleError, match=r"memory binds: .*cut 4") as err:
        plan(prof, prompt_len=4, max_new=8, link=LINK, memory_bytes=budget, cuts=[4])
    assert err.value.binding == "memory"
    p = plan(prof, prompt_len=4, max_new=8, link=LINK, memory_bytes=budget, handovers=[0])
    assert p.cut <= 2 and p.memory_bytes <= budget
    assert p.ruled_out()["memory"] == 3  # cuts 3, 4, 5
    assert {r["cut"] for r in p.table if r["binds"] == "memory"} == {3, 4, 5}
    # a deadline no plan within memory meets: the deadline binds, not memory
    with pytest.raises(InfeasibleError, match="deadline binds") as err:
        plan(prof, prompt_len=4, max_new=8, link=LINK, memory_bytes=budget, deadline_s=1e-4)
    assert err.value.binding == "deadline"


def test_profile_from_other_weights_is_refused() -> None:
    data = {**_measured_profile(), "fingerprint": "ffffffffffffffff"}
    with pytest.raises(ValueError, match="fingerprint"):
        ARProfile.from_profile(INFO, data, row_bytes_for("raw", INFO.hidden))


def test_profile_is_measured_once_and_cached(tmp_path, monkeypatch) -> None:
    import slicer.llm.profile as profile

    monkeypatch.setattr(profile, "profile_path", lambda *a: tmp_path / "p.json")
    monkeypatch.setattr(profile.export, "model_info", lambda name: INFO)
    calls = []

    def measure(name, **kwargs):
        calls.append(kwargs)
        return _measured_profile()

    first, cached = load_profile("toy", measure=measure, repeats=3)
    assert not cached and calls == [{"device_model": "fp32", "threads": 1, "repeats": 3}]
    again, cached = load_profile("toy", measure=measure)
    assert cached and again == first and len(calls) == 1
    load_profile("toy", measure=measure, refresh=True)
    assert len(calls) == 2
    # a profile of other weights (same path) is measured again
    (tmp_path / "p.json").write_text(
        (tmp_path / "p.json").read_text().replace(INFO.fingerprint, "f" * 16)
    )
    _, cached = load_profile("toy", measure=measure)
    assert not cached and len(calls) == 3
