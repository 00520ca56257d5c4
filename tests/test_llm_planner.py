"""The (w, ℓ) planner of paper Eqs. 4–6 on a synthetic profile (no model needed)."""

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
