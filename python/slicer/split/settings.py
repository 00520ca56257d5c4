"""Calibrated settings files: targets, the model's fingerprint and, per cut, the chosen codec
settings with their measured cost and fidelity.

A settings file is JSON (``SETTINGS_VERSION``)::

    {"slicer_settings": 1,
     "model": {"name": "efficientnet-lite0", "fingerprint": "sha256:…"},
     "targets": [{"metric": "agreement", "value": 0.99}],
     "data": {"source": "photos", "count": 200, "holdout": 0.3, "seed": 0},
     "cuts": [{"index": 120, "name": "/_blocks.11/_swish/Clip_output_0",
               "status": "ok",                       # ok | interval-misses | unreachable
               "params": {"mode": "topk", "sparsity": 0.7, "bits": 5, …},
               "bits_per_element": 2.41, "payload_bytes": 6613, "payload_bytes_max": 6801,
               "raw_bytes": 87808,
               "calibration": {"agreement": 1.0},
               "holdout": {"agreement": {"value": 0.99, "low": 0.97, "high": 1.0}}, …}]}

A cut calibrated with a transform (``slicer calibrate --klt``) also holds
``"transform": {"tensor": NAME, "file": "….npz", "fingerprint": "sha256:…", …}``: the
calibrated KLT of that cut tensor (:class:`~slicer.split.transform.CutTransform`) in a file
next to the settings file (a relative ``file`` is relative to the settings file's folder),
checked against its fingerprint when loaded. A cut calibrated with ``slicer calibrate
--estimator`` holds ``"estimator": {"tensor": NAME, "file": "….npz", "fingerprint": "sha256:…",
"kind": "lmmse", "window": 3, "holdout": {…}}`` the same way: the decoder-side estimator
(:class:`~slicer.split.estimator.CutEstimator`) the receiving side applies after decode.

The fingerprint hashes what makes a model that model — its weights and its inputs/outputs —
and not the bytes of the file, so a re-export of the same weights keeps its fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.numpy_helper

SETTINGS_VERSION = 1

# metric -> (higher is better, description)
METRICS: dict[str, tuple[bool, str]] = {
    "agreement": (True, "top-1 agreement with the uncut model (fraction of rows)"),
    "cosine": (True, "mean cosine similarity of the output to the uncut output"),
    "kl": (False, "mean KL(uncut ‖ split) of the output distributions, nats"),
    "rel_l2": (False, "mean relative L2 error of the output"),
    "ppl": (False, "relative perplexity change of a causal LM (0.02 = +2 %)"),
}
STATUSES = ("ok", "interval-misses", "unreachable")


@dataclass(frozen=True)
class Target:
    """One fidelity target: ``metric`` must be ≥ ``value`` (higher-better metrics) or ≤."""

    metric: str
    value: float

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; known: {', '.join(METRICS)}")
        if not math.isfinite(self.value):
            raise ValueError(f"target value for {self.metric} must be finite, got {self.value}")
        if self.metric in ("agreement", "cosine") and not -1 <= self.value <= 1:
            raise ValueError(f"{self.metric} target must be in [0, 1], got {self.value}")
        if self.metric in ("kl", "rel_l2") and self.value < 0:
            raise ValueError(f"{self.metric} target must be ≥ 0, got {self.value}")

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric][0]

    def met(self, value: float) -> bool:
        if value is None or not math.isfinite(value):
            return False
        return value >= self.value if self.higher_is_better else value <= self.value

    def guarded(self, guard: float) -> Target:
        """The target with only ``guard`` (0 < guard ≤ 1) of its allowed loss: 1 − value for
        agreement / cosine, value for kl / rel_l2 / ppl. The search uses it so that a
        setting chosen on the calibration split keeps the real target on unseen inputs."""
        if not 0 < guard <= 1:
            raise ValueError(f"guard must be in (0, 1], got {guard!r}")
        if self.higher_is_better:
            return Target(self.metric, 1 - (1 - self.value) * guard)
        return Target(self.metric, self.value * guard if self.value > 0 else self.value)

    def text(self) -> str:
        op = "≥" if self.higher_is_better else "≤"
        if self.metric == "agreement":
            return f"agreement {op} {100 * self.value:g} %"
        if self.metric == "ppl":
            return f"perplexity change {op} {100 * self.value:+g} %"
        return f"{self.metric} {op} {self.value:g}"

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": self.value}


def parse_target(text: str) -> Target:
    """``METRIC:VALUE``: ``agreement:0.99``, ``agreement:99%``, ``cosine:0.99``, ``kl:0.01``,
    ``rel_l2:0.05``, ``ppl:0.02`` or ``ppl:+2%``."""
    if not isinstance(text, str) or ":" not in text:
        raise ValueError(
            f"target must be METRIC:VALUE (e.g. agreement:0.99, ppl:+2%), got {text!r}; "
            f"metrics: {', '.join(METRICS)}"
        )
    metric, _, raw = text.partition(":")
    metric = metric.strip().lower().replace("-", "_")
    raw = raw.strip()
    scale = 1.0
    if raw.endswith("%"):
        raw, scale = raw[:-1], 0.01
    try:
        value = float(raw) * scale
    except ValueError:
        raise ValueError(f"target {text!r}: {raw!r} is not a number") from None
    return Target(metric, value)


def as_targets(targets: Target | str | Sequence[Target | str]) -> list[Target]:
    """Targets from one or several ``Target`` objects or ``METRIC:VALUE`` strings."""
    if isinstance(targets, (Target, str)):
        targets = [targets]
    out = [t if isinstance(t, Target) else parse_target(t) for t in targets]
    if not out:
        raise ValueError("at least one target is needed (e.g. agreement:0.99)")
    if len({t.metric for t in out}) != len(out):
        raise ValueError("each metric may have one target only")
    return out


# ------------------------------------------------------------------------------ fingerprint

FINGERPRINT_MIN_ELEMENTS = 256  # small constants (shapes, pads) vary between exporters


def fingerprint(model: onnx.ModelProto, external_dir: str | os.PathLike | None = None) -> str:
    """``sha256:…`` of the model's weights (every initializer of at least 256 elements, as a
    sorted multiset of content hashes) and of its input / output names and element types."""
    digests = []
    for t in model.graph.initializer:
        count = int(np.prod(t.dims)) if len(t.dims) else 1
        if count < FINGERPRINT_MIN_ELEMENTS:
            continue
        arr = onnx.numpy_helper.to_array(t, base_dir=str(external_dir) if external_dir else "")
        h = hashlib.sha256()
        h.update(str(arr.dtype).encode())
        h.update(str(tuple(arr.shape)).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
        digests.append(h.hexdigest())
    top = hashlib.sha256()
    for d in sorted(digests):
        top.update(d.encode())
    for io in (model.graph.input, model.graph.output):
        inits = {t.name for t in model.graph.initializer}
        for v in io:
            if v.name not in inits:
                top.update(f"{v.name}:{v.type.tensor_type.elem_type};".encode())
    return "sha256:" + top.hexdigest()


# ------------------------------------------------------------------------------ file I/O


def save_settings(settings: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write the settings JSON; a transform file in the settings file's folder is referenced
    by its bare name (the pair can move together)."""
    validate_settings(settings, str(path))
    folder = Path(path).resolve().parent
    data = json.loads(json.dumps(settings))
    for c in data["cuts"]:
        for key in ARTIFACTS:
            t = c.get(key)
            if t is not None and Path(t["file"]).resolve().parent == folder:
                t["file"] = Path(t["file"]).name
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")


def load_settings(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a settings file (``ValueError`` naming the problem otherwise)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"settings file not found: {p}")
    try:
        with open(p) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"settings file {p} is not valid JSON: {exc}") from None
    validate_settings(data, str(p))
    for c in data["cuts"]:  # artifact files: relative to the settings file's folder
        for key in ARTIFACTS:
            t = c.get(key)
            if t is not None and not Path(t["file"]).is_absolute():
                t["file"] = str(p.resolve().parent / t["file"])
    return data


#: per-cut artifacts stored in files beside the settings: entry key → what it holds
ARTIFACTS = ("transform", "estimator")


def _artifact_for_entry(entry: Mapping[str, Any], key: str, load: Any) -> dict[str, Any]:
    t = entry.get(key)
    if t is None:
        return {}
    path = Path(t["file"])
    if not path.is_file():
        raise ValueError(f"cut {entry['name']}: {key} file not found: {path}")
    obj = load(path)
    if obj.fingerprint() != t["fingerprint"]:
        raise ValueError(
            f"cut {entry['name']}: {key} file {path} has fingerprint "
            f"{obj.fingerprint()[:19]}…, the settings expect {t['fingerprint'][:19]}…"
        )
    return {t["tensor"]: obj}


def transforms_for_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The cut's transforms ({tensor name: CutTransform}; empty without one), loaded from the
    entry's file and checked against its fingerprint (``ValueError`` otherwise)."""
    from .transform import CutTransform

    return _artifact_for_entry(entry, "transform", CutTransform.load)


def estimators_for_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The cut's decoder-side estimators ({tensor name: CutEstimator}; empty without one),
    loaded from the entry's file (validated) and checked against its fingerprint."""
    from .estimator import CutEstimator

    return _artifact_for_entry(entry, "estimator", CutEstimator.load)


def _artifacts_for_cut(path: str | os.PathLike, cut: str, for_entry: Any) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or "slicer_settings" not in data:
        return {}
    entry = settings_for_cut(load_settings(path), cut)
    return for_entry(entry) if entry is not None else {}


def estimators_for_cut(path: str | os.PathLike, cut: str) -> dict[str, Any]:
    """The decoder-side estimators of cut ``cut`` in the settings file ``path`` (empty when
    the file is not a settings file, e.g. a ``slicer plan --json`` output, or the cut's entry
    has none)."""
    return _artifacts_for_cut(path, cut, estimators_for_entry)


def transforms_for_cut(path: str | os.PathLike, cut: str) -> dict[str, Any]:
    """The calibrated transforms of cut ``cut`` in the settings file ``path`` (empty when the
    file is not a settings file or the cut's entry has none), as :func:`transforms_for_entry`."""
    return _artifacts_for_cut(path, cut, transforms_for_entry)


def _need(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise ValueError(f"malformed settings {where}: {what}")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def validate_settings(data: Any, where: str = "") -> None:
    """Check the structure of a settings dict; raises ``ValueError`` naming the bad field."""
    where = where or "(in memory)"
    _need(isinstance(data, dict), where, "the top level must be a JSON object")
    version = data.get("slicer_settings")
    _need(version is not None, where, "no 'slicer_settings' version field (not a settings file?)")
    _need(
        version == SETTINGS_VERSION,
        where,
        f"'slicer_settings' is {version!r}; this SLICER reads version {SETTINGS_VERSION}",
    )
    model = data.get("model")
    _need(isinstance(model, dict), where, "'model' must be an object")
    fp = model.get("fingerprint")
    _need(
        isinstance(fp, str) and fp.startswith("sha256:"),
        where,
        "'model.fingerprint' must be a 'sha256:…' string",
    )
    targets = data.get("targets")
    _need(isinstance(targets, list) and targets, where, "'targets' must be a non-empty list")
    for i, t in enumerate(targets):
        _need(isinstance(t, dict), where, f"targets[{i}] must be an object")
        try:
            Target(t.get("metric"), float(t.get("value")))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"malformed settings {where}: targets[{i}]: {exc}") from None
    cuts = data.get("cuts")
    _need(isinstance(cuts, list), where, "'cuts' must be a list")
    for i, c in enumerate(cuts):
        _need(isinstance(c, dict), where, f"cuts[{i}] must be an object")
        _need(isinstance(c.get("name"), str), where, f"cuts[{i}].name must be a string")
        _need(
            isinstance(c.get("index"), int) and not isinstance(c.get("index"), bool),
            where,
            f"cuts[{i}].index must be an integer",
        )
        _need(c.get("status") in STATUSES, where, f"cuts[{i}].status must be one of {STATUSES}")
        if c["status"] == "unreachable":
            continue
        params = c.get("params")
        _need(isinstance(params, dict), where, f"cuts[{i}].params must be an object")
        try:
            params_from_json(params)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"malformed settings {where}: cuts[{i}].params: {exc}") from None
        for key in ("bits_per_element", "payload_bytes"):
            _need(_number(c.get(key)) and c[key] >= 0, where, f"cuts[{i}].{key} must be ≥ 0")
        for art in ARTIFACTS:
            t = c.get(art)
            if t is None:
                continue
            _need(isinstance(t, dict), where, f"cuts[{i}].{art} must be an object")
            for key in ("tensor", "file", "fingerprint"):
                _need(
                    isinstance(t.get(key), str),
                    where,
                    f"cuts[{i}].{art}.{key} must be a string",
                )
            _need(
                t["fingerprint"].startswith("sha256:"),
                where,
                f"cuts[{i}].{art}.fingerprint must be a 'sha256:…' string",
            )


def params_from_json(params: Mapping[str, Any]):  # noqa: ANN201 - CodecParams
    """A ``CodecParams`` from a settings entry (unknown keys are refused)."""
    from .transport import CodecParams

    fields = set(CodecParams.__dataclass_fields__)
    unknown = set(params) - fields
    if unknown:
        raise ValueError(f"unknown codec parameter(s) {sorted(unknown)}")
    p = CodecParams(**params)
    p.validate()
    return p


def check_model(settings: Mapping[str, Any], model_fingerprint: str, model_label: str) -> None:
    """Refuse settings calibrated for another model."""
    made_for = settings["model"]
    if made_for["fingerprint"] != model_fingerprint:
        raise ValueError(
            f"these settings were calibrated for {made_for.get('name') or 'another model'} "
            f"(fingerprint {made_for['fingerprint'][:19]}…), not for {model_label} "
            f"(fingerprint {model_fingerprint[:19]}…): recalibrate with `slicer calibrate`"
        )


def settings_for_cut(settings: Mapping[str, Any], key: str | int) -> dict[str, Any] | None:
    for c in settings["cuts"]:
        if c["name"] == key or (isinstance(key, int) and c["index"] == key):
            return c
    return None


def targets_of(settings: Mapping[str, Any]) -> list[Target]:
    return [Target(t["metric"], float(t["value"])) for t in settings["targets"]]


def shipped_settings_path(model_name: str) -> Path:
    """The calibrated settings shipped for a zoo model (``settings/NAME.json``)."""
    return Path(__file__).parent / "settings" / f"{model_name}.json"
