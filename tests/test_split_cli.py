"""`slicer cuts | plan | run`: JSON contracts and the lossless round trip, on the real
EfficientNet-Lite0 and MiniLM exports."""

from __future__ import annotations

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import json  # noqa: E402

import numpy as np  # noqa: E402

from slicer.cli import main  # noqa: E402
from split_helpers.models import full_outputs, partitioner, real_inputs  # noqa: E402


def _json(capsys, argv: list[str]) -> tuple[int, dict]:  # noqa: ANN001
    code = main(argv)
    out = capsys.readouterr().out
    return code, json.loads(out)


@pytest.fixture(scope="module")
def effnet_path() -> str:
    from slicer.split import zoo

    partitioner("efficientnet-lite0")
    return str(zoo.model_path("efficientnet-lite0"))


@pytest.fixture(scope="module")
def effnet_inputs(tmp_path_factory) -> str:  # noqa: ANN001
    path = tmp_path_factory.mktemp("inputs") / "photo.npz"
    np.savez(path, **real_inputs("efficientnet-lite0"))
    return str(path)


def test_cuts_json_fields(capsys, effnet_path) -> None:  # noqa: ANN001
    code, out = _json(capsys, ["cuts", effnet_path, "--json"])
    assert code == 0
    assert out["num_cuts"] == len(out["cuts"]) == len(partitioner("efficientnet-lite0").cuts())
    cut = next(c for c in out["cuts"] if c["name"] == "/_blocks.9/Add_output_0")
    assert set(cut) >= {"index", "name", "tensors", "head_param_bytes"}
    assert cut["tensors"] == [
        {"name": "/_blocks.9/Add_output_0", "shape": [1, 112, 14, 14], "dtype": "float32"}
    ]
    assert cut["single_tensor"] is True
    heads = [c["head_param_bytes"] for c in out["cuts"]]
    assert heads == sorted(heads) and 0 < heads[-1] < 20e6


def test_cuts_table_lists_names(capsys, effnet_path) -> None:  # noqa: ANN001
    assert main(["cuts", effnet_path, "--simple"]) == 0
    text = capsys.readouterr().out
    assert "/_blocks.9/Add_output_0" in text and "single-tensor" in text


def test_run_lossless_settings_reproduce_uncut_outputs(
    capsys,
    effnet_path,  # noqa: ANN001
    effnet_inputs,
) -> None:
    code, out = _json(
        capsys,
        [
            "run",
            effnet_path,
            "--split",
            "/_blocks.9/Add_output_0",
            "--sparsity",
            "0",
            "--bits",
            "16",
            "--delta",
            "0",
            "--inputs",
            effnet_inputs,
            "--json",
            "--providers",
            "cpu",
        ],
    )
    assert code == 0
    assert out["cut"] == {
        "index": partitioner("efficientnet-lite0").find_cut("/_blocks.9/Add_output_0").index,
        "name": "/_blocks.9/Add_output_0",
    }
    ref = full_outputs("efficientnet-lite0")["logits"]
    fid = out["fidelity"]
    assert fid["top1_agreement"] == 1.0
    assert fid["rel_l2"] < 1e-4  # 16-bit steps on a 112x14x14 feature: float-level error
    assert fid["max_abs_diff"] < 1e-3 * float(np.abs(ref).max())
    assert out["raw_bytes"] == 112 * 14 * 14 * 4
    assert set(out["latency_ms"]) >= {"device", "encode", "decode", "server"}
    assert out["provider"] == "CPUExecutionProvider"


def test_run_json_fields_and_compression(capsys, effnet_path, effnet_inputs) -> None:  # noqa: ANN001
    code, out = _json(
        capsys,
        [
            "run",
            effnet_path,
            "--split",
            "65",
            "--sparsity",
            "0.8",
            "--inputs",
            effnet_inputs,
            "--json",
        ],
    )
    assert code == 0
    assert set(out) >= {
        "cut",
        "raw_bytes",
        "encoded_bytes",
        "bits_per_element",
        "latency_ms",
        "fidelity",
    }
    assert out["cut"]["index"] == 65
    assert out["encoded_bytes"] < out["raw_bytes"] / 4
    assert out["bits_per_element"] == pytest.approx(8 * out["encoded_bytes"] / (112 * 14 * 14))
    assert set(out["fidelity"]) >= {"max_abs_diff", "rel_l2", "top1_agreement"}
    assert 0 < out["fidelity"]["rel_l2"] < 1


def test_run_random_inputs_on_minilm_has_no_top1(capsys) -> None:  # noqa: ANN001
    from slicer.split import zoo

    partitioner("minilm")
    code, out = _json(capsys, ["run", str(zoo.model_path("minilm")), "--json"])
    assert code == 0
    assert "top1_agreement" not in out["fidelity"]  # an L2-normalized embedding, not logits
    assert "attention_mask" in out["cut"]["name"] or any(
        t["name"] == "attention_mask" for t in out["tensors"]
    )
    assert "attention_mask" not in out["coded_tensors"]  # masks travel exactly:
    assert "attention_mask" in out["side_tensors"]  # as a lossless docs/side.md string


def test_run_rejects_bad_split_and_inputs(capsys, effnet_path, tmp_path) -> None:  # noqa: ANN001
    assert main(["run", effnet_path, "--split", "no-such-tensor"]) == 2
    assert "no cut named" in capsys.readouterr().err
    bad = tmp_path / "wrong.npz"
    np.savez(bad, pixels=np.zeros((1, 3, 224, 224), np.float32))
    assert main(["run", effnet_path, "--inputs", str(bad)]) == 2
    assert "no array named 'image'" in capsys.readouterr().err


def test_plan_json_fields_and_profile_reuse(
    capsys,
    effnet_path,
    effnet_inputs,  # noqa: ANN001
    tmp_path,
) -> None:
    prof = tmp_path / "profile.json"
    argv = [
        "plan",
        effnet_path,
        "--memory",
        "64MB",
        "--deadline",
        "200ms",
        "--rate",
        "20Mbps",
        "--bandwidth",
        "10MHz",
        "--snr",
        "10",
        "--profile",
        str(prof),
        "--inputs",
        effnet_inputs,
        "--threads",
        "2",
        "--json",
    ]
    code, out = _json(capsys, argv)
    assert code == 0 and out["feasible"] is True
    assert set(out) >= {
        "feasible",
        "cut",
        "params",
        "latency_ms",
        "memory_bytes",
        "payload_bytes",
        "reason",
    }
    assert set(out["params"]) >= {"sparsity", "blocks", "bits", "delta"}
    assert set(out["latency_ms"]) == {"device", "encode", "transmit", "total"}
    lat = out["latency_ms"]
    assert lat["total"] == pytest.approx(lat["device"] + lat["encode"] + lat["transmit"])
    assert lat["total"] <= 200
    assert prof.is_file()
    saved = json.loads(prof.read_text())
    assert all(c["memory_bytes"] >= c["head_param_bytes"] for c in saved["cuts"])
    for c in saved["cuts"]:
        assert c["device_latency_s"] > 0 and c["codec_encode_s"] > 0
        (t,) = c["tensors"]  # EfficientNet's simple cuts carry one tensor
        assert c["raw_bytes"] == 4 * int(np.prod(t["shape"]))
    assert [c["index"] for c in saved["cuts"]] == sorted(c["index"] for c in saved["cuts"])
    assert saved["codec_table"]["elements"] == sorted(saved["codec_table"]["elements"])
    # The saved profile is reused: a memory budget between two cuts moves the choice.
    mems = sorted(c["memory_bytes"] for c in saved["cuts"])
    tight = [
        "plan",
        effnet_path,
        "--memory",
        str((mems[3] + mems[4]) // 2),
        "--deadline",
        "200ms",
        "--rate",
        "20Mbps",
        "--profile",
        str(prof),
        "--json",
    ]
    code, out2 = _json(capsys, tight)
    if out2["feasible"]:
        assert out2["memory_bytes"] <= (mems[3] + mems[4]) // 2
        assert out2["cut"]["index"] <= out["cut"]["index"]
    # A profile is tied to its model.
    other = tmp_path / "other.onnx"
    other.write_bytes(open(effnet_path, "rb").read())  # same graph, another model file
    assert (
        main(
            [
                "plan",
                str(other),
                "--memory",
                "64MB",
                "--deadline",
                "200ms",
                "--rate",
                "20Mbps",
                "--profile",
                str(prof),
            ]
        )
        == 2
    )
    assert "was made for" in capsys.readouterr().err
    # Nothing fits in 1 kB of memory: infeasible, exit 1, and the reason says memory.
    code, out3 = _json(
        capsys,
        [
            "plan",
            effnet_path,
            "--memory",
            "1kB",
            "--deadline",
            "200ms",
            "--rate",
            "20Mbps",
            "--profile",
            str(prof),
            "--json",
        ],
    )
    assert code == 1 and out3["feasible"] is False
    assert out3["reason"].startswith("infeasible (memory)")


def test_run_without_model_is_the_photo_demo(capsys) -> None:  # noqa: ANN001
    pytest.importorskip("PIL")
    partitioner("efficientnet-lite0")
    code, out = _json(capsys, ["run", "--json"])
    assert code == 0
    assert out["model"] == "efficientnet-lite0" and out["num_inputs"] == 40
    assert out["cut"]["name"] == "/_blocks.11/_swish/Clip_output_0"
    # The shipped calibrated settings choose the codec setting of the demo cut.
    from slicer.split.settings import load_settings, settings_for_cut, shipped_settings_path

    shipped = load_settings(shipped_settings_path("efficientnet-lite0"))
    entry = settings_for_cut(shipped, out["cut"]["name"])
    assert out["params"] == entry["params"]
    assert out["settings"].startswith("shipped settings (agreement")
    # Calibrated for agreement >= 99 % on 200 photo views; these are 40 of them.
    assert out["fidelity"]["top1_agreement"] >= 0.95
    assert out["compression_ratio"] > 8


def test_providers_resolve_to_what_really_loads() -> None:
    import onnxruntime as ort

    from slicer.split.providers import provider_loads, resolve_providers

    auto = resolve_providers("auto")
    assert auto[-1] == "CPUExecutionProvider"
    assert ("CUDAExecutionProvider" in auto) == provider_loads("CUDAExecutionProvider")
    assert resolve_providers("cpu") == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="not in this onnxruntime build"):
        resolve_providers("NoSuchExecutionProvider")
    if "CUDAExecutionProvider" in ort.get_available_providers() and not provider_loads(
        "CUDAExecutionProvider"
    ):
        with pytest.raises(ValueError, match="cannot load here"):
            resolve_providers("cuda")
