"""Link model (paper Eq. 1), planner (Eqs. 2-3, SLICER-Search) and budget parsing, checked
against hand computations on a hand-written profile."""

from __future__ import annotations

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import math  # noqa: E402

import slicer  # noqa: E402
from slicer.split.link import Link, parse_bytes, parse_hertz, parse_rate, parse_seconds, parse_snr  # noqa: E402
from slicer.split.planner import Budget, plan  # noqa: E402
from slicer.split.profile import codec_seconds  # noqa: E402

SHAPE = [1, 96, 28, 28]  # 75,264 float32 elements per cut tensor
N = 96 * 28 * 28
TABLE = {"elements": [1024, 1 << 20], "encode_s": [1e-4, 1e-2], "decode_s": [5e-5, 5e-3]}


def _profile(fidelity: dict | None = None) -> dict:
    cuts = []
    for i, (node, mem, dev) in enumerate(
        [(10, 1_000_000, 0.001), (20, 2_000_000, 0.002), (30, 5_000_000, 0.004)]
    ):
        cuts.append(
            {
                "index": i,
                "name": f"cut{i}",
                "node_index": node,
                "simple": True,
                "single_tensor": True,
                "tensors": [{"name": f"t{i}", "shape": SHAPE, "dtype": "float32", "coded": True}],
                "memory_bytes": mem,
                "raw_bytes": 4 * N,
                "coded_elements": N,
                "device_latency_s": dev,
                **({"fidelity": fidelity} if fidelity else {}),
            }
        )
    return {"profile_version": 1, "codec_table": TABLE, "cuts": cuts}


def bound(s: float, m: int, bits: int = 8) -> int:
    return slicer.size_bound(tuple(SHAPE), "float32", sparsity=s, blocks=m, bits=bits, delta=0.01)


# ------------------------------------------------------------------------- Eq. 1 by hand


def test_outage_and_retransmissions_by_hand() -> None:
    link = Link(rate_bps=20e6, bandwidth_hz=10e6, snr=10, eps=1e-3)
    # 2^(20/10) - 1 = 3; P_o = 1 - exp(-3/10) = 0.2591817793...
    assert link.outage_probability == pytest.approx(0.25918177931828212, rel=1e-12)
    # ln(0.001) / ln(0.25918...) = 5.1159... -> 6 tries
    assert link.transmissions == 6
    # 10 kB = 80,000 bits at 20 Mbit/s = 4 ms, six times
    assert link.transmit_seconds(10_000) == pytest.approx(0.024)
    assert link.latency_seconds(10_000, 0.003) == pytest.approx(0.027)


def test_good_link_sends_once_and_dead_link_never() -> None:
    good = Link(rate_bps=1e6, bandwidth_hz=10e6, snr=1000, eps=1e-3)
    # 2^0.1 - 1 = 0.0717735; /1000 -> P_o = 7.1747e-5 ; ln(1e-3)/ln(P_o) = 0.72 -> 1 try
    assert good.transmissions == 1
    dead = Link(rate_bps=1e12, bandwidth_hz=1e6, snr=10)
    assert dead.outage_probability == 1.0 and math.isinf(dead.transmissions)


def test_link_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="rate"):
        Link(rate_bps=0)
    with pytest.raises(ValueError, match="eps"):
        Link(rate_bps=1e6, eps=1.5)
    with pytest.raises(ValueError, match="SNR"):
        Link(rate_bps=1e6, snr=-1)


def test_budget_parsers() -> None:
    assert parse_bytes("64MB") == 64e6
    assert parse_bytes("1.5GiB") == 1.5 * 1024**3
    assert parse_seconds("30ms") == pytest.approx(0.03)
    assert parse_seconds("2s") == 2
    assert parse_bytes("1500") == 1500 and parse_seconds(0.25) == 0.25
    assert parse_rate("20Mbps") == 20e6
    assert parse_hertz("10MHz") == 10e6
    assert parse_snr("10") == 10
    assert parse_snr("20dB") == pytest.approx(100)
    with pytest.raises(ValueError, match="unknown unit"):
        parse_rate("20 parsecs")
    with pytest.raises(ValueError, match="cannot read"):
        parse_bytes("lots")


def test_codec_time_table_interpolates_log_log() -> None:
    assert codec_seconds(TABLE, 1024) == pytest.approx(1e-4)
    assert codec_seconds(TABLE, 1 << 20) == pytest.approx(1e-2)
    # geometric midpoint of the sizes -> geometric midpoint of the times
    assert codec_seconds(TABLE, 32768) == pytest.approx(1e-3, rel=1e-9)
    assert codec_seconds(TABLE, 10) == pytest.approx(1e-4)  # fixed cost floor
    assert codec_seconds(TABLE, 1 << 21) == pytest.approx(2e-2)  # at least linear beyond


# ------------------------------------------------------------------------- planner


def _total(cut: int, s: float, m: int) -> float:
    device = [0.001, 0.002, 0.004][cut]
    link = Link(rate_bps=20e6)
    return device + codec_seconds(TABLE, N) + link.transmit_seconds(bound(s, m))


def test_generous_budget_takes_deepest_cut_most_blocks_least_sparsity() -> None:
    result = plan(_profile(), Budget(1e9, 10.0, Link(rate_bps=20e6)))
    assert result.feasible
    out = result.to_json()
    assert out["cut"] == {"index": 2, "name": "cut2"}
    assert out["params"]["sparsity"] == 0.5 and out["params"]["blocks"] == 8
    assert out["payload_bytes"] == bound(0.5, 8)
    assert out["memory_bytes"] == 5_000_000 + bound(0.5, 8)
    lat = out["latency_ms"]
    assert lat["device"] == pytest.approx(4.0)
    assert lat["encode"] == pytest.approx(codec_seconds(TABLE, N) * 1e3)
    assert lat["transmit"] == pytest.approx(8 * bound(0.5, 8) / 20e6 * 6 * 1e3)
    assert lat["total"] == pytest.approx(_total(2, 0.5, 8) * 1e3)
    assert set(out) >= {
        "feasible",
        "cut",
        "params",
        "latency_ms",
        "memory_bytes",
        "payload_bytes",
        "reason",
    }


def test_blocks_are_tuned_before_sparsity() -> None:
    assert bound(0.5, 8) > bound(0.5, 4) > bound(0.5, 1)  # more blocks, more metadata
    deadline = (_total(2, 0.5, 4) + _total(2, 0.5, 6)) / 2
    result = plan(_profile(), Budget(1e9, deadline, Link(rate_bps=20e6)))
    assert result.chosen.index == 2
    assert (result.chosen.params.sparsity, result.chosen.params.blocks) == (0.5, 4)


def test_sparsity_rises_only_when_blocks_cannot_fit() -> None:
    deadline = _total(2, 0.5, 1) * 0.999  # no block count fits at s = 0.5
    assert _total(2, 0.7, 8) < deadline
    result = plan(_profile(), Budget(1e9, deadline, Link(rate_bps=20e6)))
    assert result.chosen.index == 2
    assert (result.chosen.params.sparsity, result.chosen.params.blocks) == (0.7, 8)


def test_memory_retreats_to_a_shallower_cut() -> None:
    result = plan(_profile(), Budget(3e6, 10.0, Link(rate_bps=20e6)))
    assert result.feasible and result.chosen.index == 1
    assert result.candidates[2].constraint == "memory"
    assert "deeper cuts fail (memory" in result.reason


def test_deadline_retreats_when_the_deep_head_is_too_slow() -> None:
    deadline = _total(1, 0.95, 1) + 0.0005  # cut 2 needs 4 ms of device time alone
    assert deadline < _total(2, 0.95, 1)
    result = plan(_profile(), Budget(1e9, deadline, Link(rate_bps=20e6)))
    assert result.feasible and result.chosen.index == 1
    assert result.candidates[2].constraint in ("deadline", "link")


def test_infeasible_memory_says_so() -> None:
    result = plan(_profile(), Budget(500_000, 10.0, Link(rate_bps=20e6)))
    assert not result.feasible and result.chosen is None
    assert result.reason.startswith("infeasible (memory)")
    assert result.to_json()["cut"] is None


def test_infeasible_deadline_says_so() -> None:
    result = plan(_profile(), Budget(1e9, 0.0005, Link(rate_bps=20e6)))
    assert not result.feasible
    assert result.reason.startswith("infeasible (deadline)")


def test_infeasible_link_says_so() -> None:
    slow = plan(_profile(), Budget(1e9, 0.05, Link(rate_bps=10e3)))
    assert not slow.feasible and slow.reason.startswith("infeasible (link)")
    dead = plan(_profile(), Budget(1e9, 10.0, Link(rate_bps=1e12, bandwidth_hz=1e6)))
    assert not dead.feasible and dead.reason.startswith("infeasible (link)")


def test_fidelity_floor_caps_sparsity() -> None:
    fid = {
        "0.5": {"top1_agreement": 0.99},
        "0.7": {"top1_agreement": 0.97},
        "0.8": {"top1_agreement": 0.9},
        "0.9": {"top1_agreement": 0.6},
        "0.95": {"top1_agreement": 0.3},
    }
    deadline = _total(2, 0.5, 1) * 0.999  # needs s >= 0.7
    ok = plan(_profile(fid), Budget(1e9, deadline, Link(rate_bps=20e6)), min_fidelity=0.95)
    assert ok.feasible and ok.chosen.params.sparsity == 0.7 and ok.chosen.fidelity == 0.97
    # A stricter floor forbids s = 0.7: the planner retreats to the faster cut 1 at s = 0.5.
    strict = plan(_profile(fid), Budget(1e9, deadline, Link(rate_bps=20e6)), min_fidelity=0.98)
    assert strict.chosen.index == 1 and strict.chosen.params.sparsity == 0.5
    assert "fidelity floor" in strict.candidates[2].detail
    # Every cut needs s >= 0.7 and the floor forbids it: infeasible, and the reason says why.
    everywhere = _total(0, 0.5, 1) * 0.999
    assert _total(0, 0.7, 8) < everywhere
    none = plan(_profile(fid), Budget(1e9, everywhere, Link(rate_bps=20e6)), min_fidelity=0.98)
    assert not none.feasible and "fidelity floor" in none.reason
    capped = plan(_profile(), Budget(1e9, everywhere, Link(rate_bps=20e6)), max_sparsity=0.5)
    assert not capped.feasible and capped.reason.startswith("infeasible (link)")


def test_fidelity_floor_without_measurements_is_an_error() -> None:
    with pytest.raises(ValueError, match="fidelity measurements"):
        plan(_profile(), Budget(1e9, 1.0, Link(rate_bps=20e6)), min_fidelity=0.9)
    with pytest.raises(ValueError, match="max_sparsity"):
        plan(_profile(), Budget(1e9, 1.0, Link(rate_bps=20e6)), max_sparsity=1.0)
    with pytest.raises(ValueError, match="deadline"):
        Budget(1e9, 0, Link(rate_bps=1e6))
