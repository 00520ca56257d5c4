"""Choose the split point and codec settings under memory, deadline and link budgets.

Paper Eq. 3 (single shot): the deepest cut ℓ with m(1:ℓ) ≤ M and L(ℓ, R) ≤ D, where
L = L_d(1:ℓ) + B/R · ⌈ln ε / ln P_o(R)⌉ + ζ (Eqs. 1–2). B is the codec's predicted upper bound
(``slicer.size_bound``: every block at q_bit), so feasibility is known before encoding.
SLICER-Search orders the knobs from low to high impact on accuracy: (1) the block count
M(±) — the most blocks that still fit, (2) raise the sparsity s only if needed, (3) retreat
to a shallower cut. The device also holds the encoded buffer: m(1:ℓ) + B ≤ M.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .link import Link
from .profile import codec_seconds
from .transport import CodecParams, payload_bound

DEFAULT_SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95)
DEFAULT_BLOCKS = (8, 6, 4, 3, 2, 1)


@dataclass(frozen=True)
class Budget:
    """Device memory M (bytes), deadline D (seconds) and the link."""

    memory_bytes: float
    deadline_s: float
    link: Link

    def __post_init__(self) -> None:
        if not self.memory_bytes > 0:
            raise ValueError(f"memory budget must be > 0 bytes, got {self.memory_bytes}")
        if not self.deadline_s > 0:
            raise ValueError(f"deadline must be > 0 s, got {self.deadline_s}")


@dataclass
class Candidate:
    """How one cut fares: its best setting and, if none fits, the binding constraint."""

    index: int
    name: str
    memory_bytes: int
    device_s: float
    raw_bytes: int
    feasible: bool = False
    params: CodecParams | None = None
    payload_bytes: int | None = None
    encode_s: float | None = None
    transmit_s: float | None = None
    fidelity: float | None = None
    constraint: str | None = None  # "memory", "deadline", "link" or "fidelity"
    detail: str = ""

    @property
    def total_s(self) -> float | None:
        if self.encode_s is None or self.transmit_s is None:
            return None
        return self.device_s + self.encode_s + self.transmit_s

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "feasible": self.feasible,
            "memory_bytes": self.memory_bytes,
            "raw_bytes": self.raw_bytes,
            "payload_bytes": self.payload_bytes,
            "params": _params_json(self.params) if self.params else None,
            "latency_ms": _latency_json(self),
            "fidelity": self.fidelity,
            "constraint": self.constraint,
            "detail": self.detail,
        }


@dataclass
class Plan:
    feasible: bool
    chosen: Candidate | None
    reason: str
    candidates: list[Candidate] = field(default_factory=list)
    budget: Budget | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``slicer plan --json`` object (field names are a contract)."""
        c = self.chosen
        return {
            "feasible": self.feasible,
            "cut": {"index": c.index, "name": c.name} if c else None,
            "params": _params_json(c.params) if c and c.params else None,
            "latency_ms": _latency_json(c) if c else None,
            "memory_bytes": (c.memory_bytes + (c.payload_bytes or 0)) if c else None,
            "payload_bytes": c.payload_bytes if c else None,
            "reason": self.reason,
            "link": self.budget.link.to_json() if self.budget else None,
            "budget": {
                "memory_bytes": self.budget.memory_bytes,
                "deadline_ms": self.budget.deadline_s * 1e3,
            }
            if self.budget
            else None,
            "candidates": [x.to_json() for x in self.candidates],
        }


def _params_json(p: CodecParams) -> dict[str, Any]:
    return {
        "sparsity": p.sparsity,
        "blocks": p.blocks,
        "bits": p.bits,
        "delta": p.delta,
        "groups": p.groups,
    }


def _latency_json(c: Candidate) -> dict[str, float | None]:
    def ms(v: float | None) -> float | None:
        return None if v is None else v * 1e3

    return {
        "device": ms(c.device_s),
        "encode": ms(c.encode_s),
        "transmit": ms(c.transmit_s),
        "total": ms(c.total_s),
    }


def _fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


def _measured_fidelity(record: Mapping[str, Any], sparsity: float) -> float | None:
    """The profile's measured output fidelity at this sparsity (top-1 if known, else cosine)."""
    table = record.get("fidelity") or {}
    entry = table.get(f"{sparsity:g}")
    if not entry:
        return None
    value = entry.get("top1_agreement", entry.get("cosine"))
    return None if value is None else float(value)


def plan(
    profile: Mapping[str, Any],
    budget: Budget,
    *,
    bits: int = 8,
    delta: float = 0.01,
    groups: str = "tensor",
    sparsities: Sequence[float] = DEFAULT_SPARSITIES,
    blocks: Sequence[int] = DEFAULT_BLOCKS,
    max_sparsity: float = 0.95,
    min_fidelity: float | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Plan:
    """SLICER-Search over the profiled cuts (see the module docstring).

    The fidelity floor: ``max_sparsity`` caps s for every cut; ``min_fidelity`` additionally
    rejects a sparsity whose measured fidelity in the profile (top-1 agreement for logits,
    else output cosine) is below it. A floor without measurements is an error, not ignored.

    ``settings`` (a calibrated settings dict, ``slicer calibrate``): Eq. 3 with a fidelity
    constraint per cut — each cut is sent with its own calibrated codec setting (payload: the
    largest stream measured in calibration), and a cut qualifies only when its calibrated
    setting met every target on the held-out split with the interval clearing it
    (status ``ok``); cuts the file does not cover fail on fidelity.
    """
    if not 0 <= max_sparsity < 1:
        raise ValueError(f"max_sparsity must be in [0, 1), got {max_sparsity}")
    grid = sorted(s for s in sparsities if s <= max_sparsity + 1e-12)
    if not grid:
        raise ValueError(f"no sparsity in {list(sparsities)} is ≤ max_sparsity {max_sparsity}")
    block_grid = sorted(set(int(b) for b in blocks), reverse=True)
    records = sorted(profile["cuts"], key=lambda r: r["node_index"])
    if not records:
        raise ValueError("the profile holds no cuts")
    if min_fidelity is not None and not any(r.get("fidelity") for r in records):
        raise ValueError(
            "a fidelity floor needs a profile with fidelity measurements (profile with --fidelity)"
        )
    table = profile["codec_table"]
    candidates: list[Candidate] = []
    chosen: Candidate | None = None
    for record in reversed(records):  # deepest first (Eq. 3)
        cand = Candidate(
            index=record["index"],
            name=record["name"],
            memory_bytes=int(record["memory_bytes"]),
            device_s=float(record["device_latency_s"]),
            raw_bytes=int(record["raw_bytes"]),
        )
        candidates.append(cand)
        if chosen is not None:
            cand.detail = "not needed: a deeper cut fits"
            continue
        if settings is not None:
            _fit_cut_calibrated(cand, record, budget, table, settings)
        else:
            _fit_cut(
                cand, record, budget, table, grid, block_grid, bits, delta, groups, min_fidelity
            )
        if cand.feasible:
            chosen = cand
    candidates.reverse()
    if chosen is not None:
        deepest = candidates[-1]
        retreat = (
            ""
            if chosen is deepest
            else (f"; deeper cuts fail ({deepest.constraint}: {deepest.detail})")
        )
        if settings is not None:
            how = f"with its calibrated setting ({_setting_text(chosen.params)})"
        else:
            how = f"with {chosen.params.blocks} blocks/sign at sparsity {chosen.params.sparsity:g}"
        reason = (
            f"deepest cut within memory and deadline: {chosen.name} (index {chosen.index})"
            f" {how}{retreat}"
        )
        return Plan(True, chosen, reason, candidates, budget)
    return Plan(False, None, _why_infeasible(candidates, budget, grid), candidates, budget)


def _fit_cut(
    cand: Candidate,
    record: Mapping[str, Any],
    budget: Budget,
    table: Mapping[str, Any],
    grid: Sequence[float],
    block_grid: Sequence[int],
    bits: int,
    delta: float,
    groups: str,
    min_fidelity: float | None,
) -> None:
    link = budget.link
    if cand.memory_bytes > budget.memory_bytes:
        cand.constraint = "memory"
        cand.detail = (
            f"head needs {_fmt_bytes(cand.memory_bytes)} (weights + peak activations)"
            f" > {_fmt_bytes(budget.memory_bytes)}"
        )
        return
    if cand.device_s > budget.deadline_s:
        cand.constraint = "deadline"
        cand.detail = (
            f"head alone takes {cand.device_s * 1e3:.2f} ms > {budget.deadline_s * 1e3:.2f} ms"
        )
        return
    if link.transmissions == float("inf"):
        cand.constraint = "link"
        cand.detail = "outage probability is 1 at this rate: nothing gets through"
        return
    shapes = {t["name"]: tuple(t["shape"]) for t in record["tensors"]}
    dtypes = {t["name"]: t["dtype"] for t in record["tensors"]}
    encode_s = codec_seconds(table, int(record["coded_elements"]))
    best: tuple[float, CodecParams, int] | None = None
    floor_hit = False
    for s in grid:  # (2) raise the sparsity only if needed
        fid = _measured_fidelity(record, s)
        if min_fidelity is not None and (fid is None or fid < min_fidelity):
            floor_hit = True
            break  # higher sparsity only loses more
        for m in block_grid:  # (1) the most blocks that still fit
            params = CodecParams(sparsity=s, blocks=m, bits=bits, delta=delta, groups=groups)
            bound = payload_bound(shapes, dtypes, params)
            total = cand.device_s + encode_s + link.transmit_seconds(bound)
            if best is None or total < best[0]:
                best = (total, params, bound)
            if total <= budget.deadline_s and cand.memory_bytes + bound <= budget.memory_bytes:
                cand.feasible = True
                cand.params = params
                cand.payload_bytes = bound
                cand.encode_s = encode_s
                cand.transmit_s = link.transmit_seconds(bound)
                cand.fidelity = fid
                return
    if best is None:  # the floor rules out even the lowest sparsity
        cand.constraint = "fidelity"
        cand.detail = f"even s={grid[0]:g} falls below the fidelity floor {min_fidelity:g}"
        return
    total, params, bound = best
    cand.params = params
    cand.payload_bytes = bound
    cand.encode_s = encode_s
    cand.transmit_s = link.transmit_seconds(bound)
    if cand.memory_bytes + bound > budget.memory_bytes and total <= budget.deadline_s:
        cand.constraint = "memory"
        cand.detail = (
            f"head plus the encoded buffer ({_fmt_bytes(bound)}) exceeds "
            f"{_fmt_bytes(budget.memory_bytes)}"
        )
    elif cand.device_s + encode_s > budget.deadline_s:
        cand.constraint = "deadline"
        cand.detail = (
            f"head {cand.device_s * 1e3:.2f} ms + encode {encode_s * 1e3:.2f} ms "
            f"> {budget.deadline_s * 1e3:.2f} ms"
        )
    elif floor_hit:
        cand.constraint = "fidelity"
        cand.detail = (
            f"within the fidelity floor {min_fidelity:g} (s ≤ {params.sparsity:g}) the "
            f"payload {_fmt_bytes(bound)} needs {total * 1e3:.2f} ms > "
            f"{budget.deadline_s * 1e3:.2f} ms; higher sparsity falls below the floor"
        )
    else:
        cand.constraint = "link"
        cand.detail = (
            f"smallest payload {_fmt_bytes(bound)} at s={params.sparsity:g} takes "
            f"{cand.transmit_s * 1e3:.2f} ms to send "
            f"({link.transmissions:g} tries at P_o={link.outage_probability:.3g}), "
            f"{max(0.0, budget.deadline_s - cand.device_s - encode_s) * 1e3:.2f} ms "
            f"left of the deadline"
        )


def _setting_text(p: CodecParams) -> str:
    from .calibrate import setting_text

    return setting_text(p.to_json())


def _fit_cut_calibrated(
    cand: Candidate,
    record: Mapping[str, Any],
    budget: Budget,
    table: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> None:
    """One cut under calibrated settings: its own codec setting and a fidelity gate."""
    from .settings import params_from_json

    link = budget.link
    entry = next((c for c in settings["cuts"] if c["name"] == record["name"]), None)
    if entry is None:
        cand.constraint = "fidelity"
        cand.detail = "not calibrated in the settings file"
        return
    if entry["status"] != "ok":
        cand.constraint = "fidelity"
        if entry["status"] == "unreachable":
            cand.detail = "no codec setting meets the targets at this cut"
        else:
            held = entry.get("holdout", {})
            cand.detail = "held-out interval does not clear the target: " + ", ".join(
                f"{m} {h['value']:.4g} [{h['low']:.4g}, {h['high']:.4g}]" for m, h in held.items()
            )
        return
    params = params_from_json(entry["params"])
    cand.params = params
    cand.fidelity = _first_holdout_value(entry)
    if cand.memory_bytes > budget.memory_bytes:
        cand.constraint = "memory"
        cand.detail = (
            f"head needs {_fmt_bytes(cand.memory_bytes)} (weights + peak activations)"
            f" > {_fmt_bytes(budget.memory_bytes)}"
        )
        return
    if cand.device_s > budget.deadline_s:
        cand.constraint = "deadline"
        cand.detail = (
            f"head alone takes {cand.device_s * 1e3:.2f} ms > {budget.deadline_s * 1e3:.2f} ms"
        )
        return
    if link.transmissions == float("inf"):
        cand.constraint = "link"
        cand.detail = "outage probability is 1 at this rate: nothing gets through"
        return
    payload = int(math.ceil(entry.get("payload_bytes_max", entry["payload_bytes"])))
    encode_s = codec_seconds(table, int(record["coded_elements"]))
    cand.payload_bytes = payload
    cand.encode_s = encode_s
    cand.transmit_s = link.transmit_seconds(payload)
    total = cand.device_s + encode_s + cand.transmit_s
    if cand.memory_bytes + payload > budget.memory_bytes:
        cand.constraint = "memory"
        cand.detail = (
            f"head plus the encoded buffer ({_fmt_bytes(payload)}) exceeds "
            f"{_fmt_bytes(budget.memory_bytes)}"
        )
    elif total > budget.deadline_s:
        cand.constraint = "link" if cand.device_s + encode_s <= budget.deadline_s else "deadline"
        cand.detail = (
            f"calibrated payload {_fmt_bytes(payload)} needs {total * 1e3:.2f} ms in total "
            f"(transmit {cand.transmit_s * 1e3:.2f} ms), deadline "
            f"{budget.deadline_s * 1e3:.2f} ms"
        )
    else:
        cand.feasible = True


def _first_holdout_value(entry: Mapping[str, Any]) -> float | None:
    held = entry.get("holdout") or {}
    for h in held.values():
        return float(h["value"])
    return None


def _why_infeasible(candidates: Sequence[Candidate], budget: Budget, grid: Sequence[float]) -> str:
    """One sentence naming the binding constraint (memory, deadline, link or fidelity)."""
    kinds = {c.constraint for c in candidates}
    shallowest = min(candidates, key=lambda c: c.memory_bytes)
    if kinds == {"memory"}:
        return (
            f"infeasible (memory): even the lightest cut {shallowest.name} needs "
            f"{_fmt_bytes(shallowest.memory_bytes + (shallowest.payload_bytes or 0))} on the "
            f"device, budget {_fmt_bytes(budget.memory_bytes)}"
        )
    fits_memory = [c for c in candidates if c.constraint != "memory"]
    if all(c.constraint == "deadline" for c in fits_memory):
        fastest = min(fits_memory, key=lambda c: c.device_s)
        return (
            f"infeasible (deadline): the fastest cut that fits in memory ({fastest.name}) "
            f"already needs {fastest.device_s * 1e3:.2f} ms of device time plus encoding, "
            f"deadline {budget.deadline_s * 1e3:.2f} ms"
        )
    fid = [c for c in fits_memory if c.constraint == "fidelity"]
    if fid:
        return f"infeasible (fidelity): {fid[-1].name}: {fid[-1].detail}"
    link_bound = [c for c in fits_memory if c.constraint == "link"]
    if link_bound:
        best = min(link_bound, key=lambda c: c.total_s or float("inf"))
        if best.total_s is None:
            return f"infeasible (link): {best.detail}"
        return (
            f"infeasible (link): even at sparsity {best.params.sparsity:g} the best cut "
            f"{best.name} needs {best.total_s * 1e3:.2f} ms "
            f"(transmit {best.transmit_s * 1e3:.2f} ms over "
            f"{budget.link.rate_bps / 1e6:g} Mbps with {budget.link.transmissions:g} tries), "
            f"deadline {budget.deadline_s * 1e3:.2f} ms"
        )
    return "infeasible: " + "; ".join(
        f"{c.name}: {c.constraint} ({c.detail})" for c in candidates[-3:]
    )
