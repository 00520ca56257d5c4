"""Serving a cut coded through a calibrated transform (``slicer calibrate --klt`` settings):
the client sends the transform's coefficients, the server inverts them before the tail, and
both sides must hold the same transform (``transform_fingerprint``, docs/wire.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("grpc")
pytest.importorskip("onnxruntime")

from serve_fronts import FRONTS, serve_config  # noqa: E402
from slicer.serve import EdgeClient, ServerThread, TailEngine, wire  # noqa: E402
from slicer.serve import wire_pb2 as pb  # noqa: E402
from slicer.serve.client import ServeError  # noqa: E402
from slicer.serve.toy import TOY_CUT, toy_inputs, toy_model  # noqa: E402
from slicer.split import Partitioner, SplitModel  # noqa: E402
from slicer.split.transform import CutTransform  # noqa: E402
from slicer.split.transport import encode_values  # noqa: E402
from test_serve import PARAMS, lockstep, raw_session  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return toy_model()


@pytest.fixture(scope="module")
def transform(model):
    """A KLT fitted on the toy cut tensor of 40 calibration inputs (not the test inputs)."""
    plain = SplitModel(Partitioner(model), TOY_CUT, providers=["CPUExecutionProvider"], threads=1)
    return CutTransform.fit(plain.run_head(toy_inputs(100 + k))[TOY_CUT] for k in range(40))


@pytest.fixture(scope="module")
def local(model, transform):
    """The local reference: head → forward → codec → decode → inverse → tail."""
    return SplitModel(
        Partitioner(model),
        TOY_CUT,
        providers=["CPUExecutionProvider"],
        threads=1,
        transforms={TOY_CUT: transform},
    )


@pytest.fixture(scope="module")
def engines(model, transform):
    return {
        batching: TailEngine(model, TOY_CUT, batching=batching, transforms={TOY_CUT: transform})
        for batching in (True, False)
    }


@pytest.mark.parametrize("batching", [True, False])
@pytest.mark.parametrize("front", FRONTS)
def test_replies_equal_the_local_split_model_with_the_transform(
    engines, model, local, transform, front, batching
):
    engine = engines[batching]
    info = engine.info()
    assert info.transform_fingerprint == f"{TOY_CUT}={transform.fingerprint()}"
    plain = SplitModel(Partitioner(model), TOY_CUT, providers=["CPUExecutionProvider"], threads=1)
    with ServerThread(engine, serve_config(front, max_batch=8, batch_window_ms=5)) as server:
        with EdgeClient(
            server.target, model, params=PARAMS, transforms={TOY_CUT: transform}
        ) as edge:
            futures = [edge.submit(edge.prepare(toy_inputs(k))) for k in range(24)]
            results = [f.result() for f in futures]
            for k, r in enumerate(results):
                want = local.run(toy_inputs(k), PARAMS, compare=False).outputs["logits"]
                np.testing.assert_allclose(r.outputs["logits"], want, rtol=1e-4, atol=1e-5)
                other = plain.run(toy_inputs(k), PARAMS, compare=False).outputs["logits"]
                assert not np.allclose(want, other, rtol=1e-4, atol=1e-5)  # it is another coding
            if batching:
                assert max(r.timing["batch_size"] for r in results) > 1  # batched across requests
        # the raw link carries exact values, never coefficients: no transform needed
        with EdgeClient(server.target, model, params=None) as raw:
            exact = raw.infer(toy_inputs(5)).outputs["logits"]
        np.testing.assert_allclose(exact, local.run_full(toy_inputs(5))["logits"], rtol=1e-5)


def _request(engine, local, seq, transform_fingerprint):
    inputs = toy_inputs(seq)
    values = local.run_head({i.name: inputs[i.name] for i in local.head.get_inputs()})
    values.setdefault("scale", inputs["scale"])
    packet = encode_values({n: values[n] for n in engine.tensor_names}, PARAMS, local.transforms)
    return pb.Request(
        wire_version=wire.WIRE_VERSION,
        model_fingerprint=engine.fingerprint,
        cut_id=engine.cut_id,
        session_id="t1",
        seq=seq,
        tensors=wire.pack_tensors(packet.streams, packet.raw),
        reply_kind=pb.LOGITS,
        transform_fingerprint=transform_fingerprint,
    )


def test_batch_and_per_item_decode_paths_invert_codec_tensors_only(engines, local):
    """A raw item first sends the codec items down the per-item path; codec first decodes
    them as one batch. Raw tensors arrive exact and are not inverted."""
    from slicer.serve.engine import Item

    engine = engines[True]
    fp = engine.info().transform_fingerprint
    coded = [_request(engine, local, s, fp) for s in range(1, 5)]
    raw = _request(engine, local, 5, "")
    inputs = toy_inputs(5)
    values = local.run_head({i.name: inputs[i.name] for i in local.head.get_inputs()})
    values.setdefault("scale", inputs["scale"])
    del raw.tensors[:]
    raw.tensors.extend(wire.pack_tensors({}, {n: values[n] for n in engine.tensor_names}))
    for order in (coded + [raw], [raw] + coded):
        outcomes = engine.run_batch([Item(m) for m in order])
        for m, out in zip(order, outcomes, strict=True):
            assert out.reply.code == 0, out.reply.message
            inputs = toy_inputs(m.seq)
            want = (
                local.run_full(inputs)["logits"]
                if m is raw
                else local.run(inputs, PARAMS, compare=False).outputs["logits"]
            )
            got = wire.reply_outputs(out.reply)["logits"]
            np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-4, atol=1e-5)


def test_a_client_without_the_transform_gets_failed_precondition(engines, model, local):
    engine = engines[True]
    fp = engine.info().transform_fingerprint
    with ServerThread(engine) as server:
        # EdgeClient refuses at connect: it would send values, the server expects coefficients
        with pytest.raises(ServeError, match="inverts transforms") as err:
            EdgeClient(server.target, model, params=PARAMS)
        assert err.value.code == wire.FAILED_PRECONDITION
        # a client that does not check (an older one): the server answers each request
        channel, rpc = raw_session(server.target)
        messages = [_request(engine, local, s, f) for s, f in ((1, ""), (2, fp), (3, "h1=x"))]
        replies = lockstep(rpc, [m.SerializeToString() for m in messages])
        channel.close()
    codes = [r.code for r in replies]
    assert codes == [wire.FAILED_PRECONDITION, 0, wire.FAILED_PRECONDITION], replies
    assert "none" in replies[0].message and "inverts" in replies[0].message
    want = local.run(toy_inputs(2), PARAMS, compare=False).outputs["logits"]
    got = wire.reply_outputs(replies[1])["logits"]
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-4, atol=1e-5)
    # a server without the transform refuses coefficients, and a client holding one refuses it
    plain = TailEngine(model, TOY_CUT)
    with pytest.raises(wire.WireError, match="this server inverts 'none'"):
        wire.check_request(messages[1], plain.expect(), messages[1].ByteSize())
    with ServerThread(plain) as server:
        with pytest.raises(ServeError, match="inverts transforms 'none'"):
            EdgeClient(server.target, model, params=PARAMS, transforms=local.transforms)
    with pytest.raises(ValueError, match="not inputs of the tail"):
        TailEngine(model, TOY_CUT, transforms={"nope": local.transforms[TOY_CUT]})


def _save_settings(tmp_path, transform, estimator=None) -> None:  # noqa: ANN001
    """A settings file ``tmp_path / "s.json"`` whose cut ``h1`` is coded through ``transform``
    (and decoded through ``estimator``), their files beside it."""
    from slicer.split.settings import save_settings

    entry = {
        "index": 2, "name": TOY_CUT, "status": "ok", "params": PARAMS.to_json(),
        "bits_per_element": 1.0, "payload_bytes": 40,
    }  # fmt: skip
    for key, artifact in (("transform", transform), ("estimator", estimator)):
        if artifact is not None:
            artifact.save(tmp_path / f"{key}.npz")
            entry[key] = {
                "tensor": TOY_CUT,
                "file": str(tmp_path / f"{key}.npz"),
                "fingerprint": artifact.fingerprint(),
            }
    settings = {
        "slicer_settings": 1,
        "model": {"fingerprint": "sha256:0"},
        "targets": [{"metric": "kl", "value": 0.1}],
        "cuts": [entry],
    }
    save_settings(settings, tmp_path / "s.json")


def test_settings_with_a_transform_load_and_serve(model, local, transform, tmp_path, capsys):
    import onnx

    from slicer.cli import main
    from slicer.serve.cli import load_settings
    from slicer.split.settings import transforms_for_cut

    _save_settings(tmp_path, transform)
    cut, params = load_settings(str(tmp_path / "s.json"))
    assert cut == TOY_CUT and params.sparsity == PARAMS.sparsity
    loaded = transforms_for_cut(tmp_path / "s.json", TOY_CUT)
    assert loaded[TOY_CUT].fingerprint() == transform.fingerprint()
    path = tmp_path / "toy.onnx"
    onnx.save(model, str(path))
    np.savez(tmp_path / "x.npz", **toy_inputs(9))
    engine = TailEngine(str(path), TOY_CUT, transforms=loaded)
    with ServerThread(engine) as server:
        args = ["client", str(path), "--target", server.target, "--inputs", str(tmp_path / "x.npz")]
        assert main([*args, "--settings", str(tmp_path / "s.json"), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        want = local.run(toy_inputs(9), PARAMS, compare=False).outputs["logits"][0]
        assert out["top_k_ids"] == list(np.argsort(-want, kind="stable")[:5])
        np.testing.assert_allclose(out["top_k_values"], np.sort(want)[::-1][:5], rtol=1e-4)
        assert main([*args, "--sparsity", "0.5"]) == 2  # no settings: no transform, refused
        assert "inverts transforms" in capsys.readouterr().err
    serve = ["serve", str(path), "--settings", str(tmp_path / "s.json"), "--port", "0"]
    assert main([*serve, "--engine", "ray"]) == 2
    assert "--engine ray does not apply" in capsys.readouterr().err
    assert (
        main(["loadtest", str(path), "--settings", str(tmp_path / "s.json"), "--engine", "ray"])
        == 2
    )
    assert "--engine ray does not apply" in capsys.readouterr().err


def test_loadtest_serves_what_serve_settings_serves(model, transform, tmp_path, capsys):
    """``slicer loadtest --settings`` starts its split server with the settings (the cut's
    transform and decoder-side estimator apply, as with ``slicer serve --settings``) and checks
    every reply against head → forward → codec → decode → inverse → estimator → tail."""
    import onnx

    from slicer.cli import main
    from slicer.serve.loadtest import prepare
    from slicer.split.estimator import CutEstimator
    from slicer.split.settings import estimators_for_cut, transforms_for_cut
    from slicer.split.transport import decode_packet

    plain = SplitModel(Partitioner(model), TOY_CUT, providers=["CPUExecutionProvider"], threads=1)
    pairs = []
    for k in range(40):  # calibration inputs, not the loadtest's
        x = plain.run_head(toy_inputs(300 + k))[TOY_CUT]
        packet = encode_values({TOY_CUT: x}, PARAMS, {TOY_CUT: transform})
        pairs.append((x, decode_packet(packet, {TOY_CUT: transform})[0][TOY_CUT]))
    _save_settings(tmp_path, transform, CutEstimator.fit(pairs))
    path = tmp_path / "toy.onnx"
    onnx.save(model, str(path))
    # the estimator changes the tail's outputs by far more than the reply check's tolerance
    # (1e-3 of the largest logit): a server without it would fail the check
    part, inputs = Partitioner(str(path)), [toy_inputs(k) for k in range(8)]
    cut = part.find_cut(TOY_CUT)
    artifacts = (
        transforms_for_cut(tmp_path / "s.json", TOY_CUT),
        estimators_for_cut(tmp_path / "s.json", TOY_CUT),
    )
    assert set(artifacts[1]) == {TOY_CUT}
    with_est = prepare("slicer", part, cut, inputs, PARAMS, *artifacts).expected
    without = prepare("slicer", part, cut, inputs, PARAMS, artifacts[0]).expected
    gaps = [
        float(np.max(np.abs(a[0] - b[0])) / np.max(np.abs(a[0])))
        for a, b in zip(with_est, without, strict=True)
    ]
    assert min(gaps) > 1e-2
    code = main(
        [
            "loadtest", str(path), "--settings", str(tmp_path / "s.json"), "--clients", "2",
            "--requests", "12", "--setups", "raw,slicer", "--json",
        ]
    )  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["config"]["settings"] == str(tmp_path / "s.json")
    for run in report["runs"]:
        seen = {
            k: run[k] for k in ("setup", "ok", "requests", "mismatched", "lost", "errors", "fatal")
        }
        assert run["ok"] == run["requests"] == 24 and not run["errors"], seen
        assert run["mismatched"] == run["lost"] == 0 and not run["fatal"], seen
