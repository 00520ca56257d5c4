"""Calibrated cut transforms through slicer.split: transport, SplitModel, calibrate, settings.

The MLP's cut ``a1`` = relu(x·W1) maps 16 inputs to 96 features: the features live near a
16-dimensional subspace, so their KLT codes them far better than the plain tensor.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip("onnxruntime")

sys.path.insert(0, str(Path(__file__).parent))
from slicer.split import SplitModel  # noqa: E402
from slicer.split.calibrate import AutoFamily, calibrate  # noqa: E402
from slicer.split.settings import load_settings, save_settings, transforms_for_entry  # noqa: E402
from slicer.split.transform import CutTransform  # noqa: E402
from slicer.split.transport import CodecParams, decode_packet, encode_values  # noqa: E402
from test_split_calibrate import _mlp, _samples  # noqa: E402


@pytest.fixture(scope="module")
def mlp_path(tmp_path_factory) -> str:  # noqa: ANN001
    path = tmp_path_factory.mktemp("mlp_t") / "mlp.onnx"
    onnx.save(_mlp(), str(path))
    return str(path)


def _features(split: SplitModel, samples: list[dict]) -> list[np.ndarray]:
    return [split.run_head(s)["a1"] for s in samples]


def test_transport_round_trip_and_fingerprint_checks(mlp_path) -> None:  # noqa: ANN001
    split = SplitModel(mlp_path, "a1", providers="cpu")
    calib = _features(split, _samples(200, seed=3))
    t = CutTransform.fit(calib)
    value = _features(split, _samples(1, seed=9))[0]
    values = {"a1": value}
    params = CodecParams(mode="dense", step=1e-3)
    packet = encode_values(values, params, {"a1": t})
    assert packet.transforms == {"a1": t.fingerprint()}
    got, _ = decode_packet(packet, {"a1": t})
    assert got["a1"].shape == value.shape and got["a1"].dtype == value.dtype
    np.testing.assert_allclose(got["a1"], value, atol=2e-3)
    with pytest.raises(ValueError, match="give the receiver that transform"):
        decode_packet(packet)
    other = CutTransform.fit(calib[:50])
    with pytest.raises(ValueError, match="the receiver holds"):
        decode_packet(packet, {"a1": other})
    with pytest.raises(ValueError, match="which the codec does not code"):
        encode_values(values, params, {"x": t})
    raw = encode_values(values, None, {"a1": t})  # the raw link sends the tensor exactly
    assert raw.transforms == {} and raw.raw["a1"] is value
    # float16 cut tensors keep their dtype end to end.
    half = {"a1": value.astype(np.float16)}
    got16, _ = decode_packet(encode_values(half, params, {"a1": t}), {"a1": t})
    assert got16["a1"].dtype == np.float16
    with pytest.raises(ValueError, match="not tensors of cut"):
        SplitModel(mlp_path, "a1", providers="cpu", transforms={"nope": t})


def test_transform_lowers_the_error_at_the_same_bytes(tmp_path) -> None:  # noqa: ANN001
    """Correlated features (the cut before the ReLU, h1 = x·W1: rank 16 in 96 dimensions): at
    the same byte budget the tail's output is much closer to the uncut model's through the
    transform (fit on other inputs). Batches of 64 rows so that a stream is mostly codes."""
    path = tmp_path / "mlp_dyn.onnx"
    onnx.save(_mlp(batch="batch"), str(path))
    rng = np.random.default_rng(4)

    def batches(n: int) -> list[dict]:
        return [{"x": rng.standard_normal((64, 16)).astype(np.float32)} for _ in range(n)]

    plain = SplitModel(str(path), "h1", providers="cpu")
    t = CutTransform.fit(plain.run_head(b)["h1"] for b in batches(20))
    via = SplitModel(str(path), "h1", providers="cpu", transforms={"h1": t})
    params = CodecParams(mode="auto", max_bytes=int(2.0 * 64 * 96 / 8))
    errs: dict[str, list[float]] = {"plain": [], "klt": []}
    for s in batches(10):
        for key, split in (("plain", plain), ("klt", via)):
            r = split.run(s, params)
            assert r.packet.encoded_bytes <= params.max_bytes
            ref, out = r.reference["logits"], r.outputs["logits"]
            errs[key].append(float(np.linalg.norm(out - ref) / np.linalg.norm(ref)))
    assert np.mean(errs["klt"]) < 0.6 * np.mean(errs["plain"]), errs


def test_calibrate_with_transform_writes_and_checks_it(mlp_path, tmp_path) -> None:  # noqa: ANN001
    family = AutoFamily()
    settings = calibrate(
        mlp_path,
        ["kl:0.05"],
        _samples(60),
        split="h1",
        holdout=0.25,
        families=[family],
        model_name="mlp",
        transform=True,
        transform_dir=tmp_path,
    )
    (entry,) = settings["cuts"]
    # h1 = x·W1 is rank 16 in 96 dimensions: the KLT search is the cheaper one and is kept.
    t = entry["transform"]
    assert t["tensor"] == "h1" and t["kind"] == "klt" and t["vectors"] == 45
    bpe = t["bits_per_element"]
    assert entry["bits_per_element"] == bpe["with"] < bpe["without"]
    assert Path(t["file"]).parent == tmp_path.resolve()
    transforms = transforms_for_entry(entry)
    assert transforms["h1"].fingerprint() == t["fingerprint"]
    # Saved next to the settings: referenced by name, found again when loaded.
    path = tmp_path / "s.json"
    save_settings(settings, path)
    assert json.loads(path.read_text())["cuts"][0]["transform"]["file"] == Path(t["file"]).name
    again = load_settings(path)
    assert transforms_for_entry(again["cuts"][0])["h1"].fingerprint() == t["fingerprint"]
    # A file that is not the one calibrated is refused.
    CutTransform.fit(
        SplitModel(mlp_path, "h1", providers="cpu").run_head(x)["h1"] for x in _samples(9)
    ).save(t["file"])
    with pytest.raises(ValueError, match="the settings expect"):
        transforms_for_entry(load_settings(path)["cuts"][0])
    Path(t["file"]).unlink()
    with pytest.raises(ValueError, match="transform file not found"):
        transforms_for_entry(load_settings(path)["cuts"][0])
    # The serving back-end reads the cut and loads its transform the same way (checked).
    from slicer.serve.cli import load_settings as serve_settings
    from slicer.split.settings import transforms_for_cut

    assert serve_settings(str(path))[0] == entry["name"]
    with pytest.raises(ValueError, match="transform file not found"):
        transforms_for_cut(path, entry["name"])


def test_calibrate_keeps_the_plain_search_when_the_transform_loses(mlp_path, tmp_path) -> None:  # noqa: ANN001
    """After the ReLU (a1) half the features are exact zeros that the plain dense code sends
    for almost nothing; whichever search is cheaper is kept, and the other is on record."""
    settings = calibrate(
        mlp_path, ["kl:0.05"], _samples(60), split="a1", holdout=0.25, families=[AutoFamily()],
        model_name="mlp", transform=True, transform_dir=tmp_path,
    )  # fmt: skip
    (entry,) = settings["cuts"]
    record = entry.get("transform") or entry["transform_tried"]
    bpe = record["bits_per_element"]
    kept = "with" if "transform" in entry else "without"
    assert entry["bits_per_element"] == bpe[kept] == min(bpe["with"], bpe["without"])


def test_cli_calibrate_klt_then_run_applies_the_transform(mlp_path, tmp_path, capsys) -> None:  # noqa: ANN001
    from slicer.cli import main

    out = tmp_path / "settings.json"
    npz = tmp_path / "inputs.npz"
    np.savez(npz, x=np.stack([s["x"] for s in _samples(40)]))
    argv = ["calibrate", mlp_path, "--split", "h1", "--target", "kl:0.05", "--inputs", str(npz)]
    assert main([*argv, "--klt", "--modes", "auto", "--out", str(out), "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)["cuts"][0]
    t = entry["transform"]  # h1 is rank 16 of 96: the transform wins
    assert (tmp_path / Path(t["file"]).name).is_file()
    assert main(["run", mlp_path, "--split", "h1", "--settings", str(out), "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["transforms"] == {"h1": t["fingerprint"]}
    assert run["bits_per_element"] < 32 and run["fidelity"]
    # Moved together, the pair still works; the transform alone gone is a clear error.
    moved = tmp_path / "moved"
    moved.mkdir()
    (tmp_path / "settings.json").rename(moved / "s.json")
    (tmp_path / Path(t["file"]).name).rename(moved / Path(t["file"]).name)
    assert main(["run", mlp_path, "--split", "h1", "--settings", str(moved / "s.json")]) == 0
    capsys.readouterr()
    (moved / Path(t["file"]).name).unlink()
    assert main(["run", mlp_path, "--split", "h1", "--settings", str(moved / "s.json")]) == 2
    assert "transform file not found" in capsys.readouterr().err
