"""The batch worker of slicer.serve: one decode_batch per tensor, replies from the batch outputs.

Each reply of a mixed batch (good codec items, raw items, a corrupt stream, wrong shapes, every
reply kind) is checked against an independent reference: the item's tensors decoded alone with
slicer.decode, the tail run on them alone, the reply built by wire.reply_payload.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("grpc")
pytest.importorskip("onnxruntime")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import slicer  # noqa: E402
from slicer.serve import TailEngine, wire  # noqa: E402
from slicer.serve import wire_pb2 as pb  # noqa: E402
from slicer.serve.engine import Item  # noqa: E402
from slicer.serve.toy import TOY_CUT, WIDTH, toy_model  # noqa: E402


@pytest.fixture(scope="module")
def engine():
    return TailEngine(toy_model(), TOY_CUT)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.integers(0, 6),
    width=st.integers(1, 12),
    k=st.integers(1, 14),
    pool=st.lists(
        st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5, np.inf, -np.inf, np.nan, 1e-30]),
        min_size=1,
        max_size=5,
    ),
    seed=st.integers(0, 2**16),
)
def test_top_k_rows_equals_top_k_ids(rows, width, k, pool, seed) -> None:
    rng = np.random.default_rng(seed)
    if seed % 2:  # few distinct values: ties everywhere
        matrix = rng.choice(np.array(pool, np.float32), size=(rows, width))
    else:
        matrix = rng.standard_normal((rows, width)).astype(np.float32)
    got = wire.top_k_rows(matrix, k)
    assert got.shape == (rows, min(k, width)) and got.dtype == np.int64
    ids, values = wire.top_k_rows_values(matrix, k)
    np.testing.assert_array_equal(ids, got)
    assert values.shape == got.shape and values.dtype == matrix.dtype
    for r in range(rows):
        assert got[r].tolist() == wire.top_k_ids(matrix[r], k).tolist()
        np.testing.assert_array_equal(values[r], matrix[r, got[r]])  # NaN equals NaN here


def _request(engine, seq: int, h1, scale, kind=pb.TOP_K, top_k: int = 3) -> pb.Request:
    tensors = [
        pb.Tensor(name="h1", codec=h1)
        if isinstance(h1, bytes)
        else pb.Tensor(name="h1", raw=wire.raw_tensor(h1)),
        pb.Tensor(name="scale", raw=wire.raw_tensor(scale)),
    ]
    if seq % 2:
        tensors.reverse()  # the order of tensors in a request is free
    return pb.Request(
        wire_version=wire.WIRE_VERSION,
        model_fingerprint=engine.fingerprint,
        cut_id=engine.cut_id,
        session_id=f"s{seq}",
        seq=seq,
        reply_kind=kind,
        top_k=top_k if kind == pb.TOP_K else 0,
        tensors=tensors,
    )


def _reference(engine, h1, scale, kind, top_k) -> pb.Reply:
    x = slicer.decode(h1) if isinstance(h1, bytes) else h1
    outs = engine.session.run(list(engine.output_names), {"h1": x, "scale": scale})
    return wire.reply_payload(pb.Reply(), engine.output_names, outs, kind, top_k)


def test_mixed_batch_matches_items_alone(engine) -> None:
    rng = np.random.default_rng(7)
    cases = []  # (h1, scale, kind, top_k, expected error substring or None)
    kinds = [(pb.TOP_K, 3), (pb.TOP_K, 10), (pb.OUTPUTS, 0), (pb.TOKEN, 0), (pb.LOGITS, 0)]
    for i in range(23):
        h = np.maximum(rng.standard_normal((1, WIDTH)), 0).astype(np.float32)
        scale = np.array([[1 + i % 3]], np.int64)
        kind, k = kinds[i % len(kinds)]
        if i % 6 == 5:
            cases.append((h, scale, kind, k, None))  # raw h1: another payload layout
        else:
            stream = (
                slicer.encode(h, sparsity=0.5)
                if i % 2
                else slicer.encode(h, mode="dense", step=0.02)
            )
            cases.append((stream, scale, kind, k, None))
    good = cases[0][0]
    corrupt = bytearray(good)
    corrupt[len(corrupt) // 2] ^= 0x08
    wrong_width = slicer.encode(np.ones((1, WIDTH + 1), np.float32), sparsity=0.5)
    wrong_dtype = slicer.encode(np.ones((1, WIDTH), np.float16), sparsity=0.5)
    scale = np.array([[2]], np.int64)
    cases[3] = (bytes(corrupt), scale, pb.TOP_K, 3, "bad codec stream")
    cases[8] = (wrong_width, scale, pb.TOP_K, 3, "has shape")
    cases[12] = (wrong_dtype, scale, pb.OUTPUTS, 0, "float16")
    cases[15] = (good, np.array([[1, 2]], np.int64), pb.TOP_K, 3, "has shape")
    items = [Item(_request(engine, s + 1, *c[:4])) for s, c in enumerate(cases)]
    outcomes = engine.run_batch(items)
    batched = 0
    for s, ((h1, sc, kind, k, error), out) in enumerate(zip(cases, outcomes, strict=True)):
        reply = out.reply
        assert reply.session_id == f"s{s + 1}" and reply.seq == s + 1
        if error is not None:
            assert reply.code == wire.INVALID_ARGUMENT and error in reply.message, reply.message
            continue
        assert reply.code == 0, reply.message
        ref = _reference(engine, h1, sc, kind, k)
        assert reply.kind == ref.kind
        assert list(reply.top_k_ids) == list(ref.top_k_ids)
        np.testing.assert_allclose(reply.top_k_values, ref.top_k_values, rtol=1e-5, atol=1e-6)
        assert list(reply.output_names) == list(ref.output_names)
        for got, want in zip(wire.reply_outputs(reply).values(), wire.reply_outputs(ref).values(),
                             strict=True):  # fmt: skip
            assert got.shape == want.shape and got.dtype == want.dtype
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        assert reply.server_id == engine.server_id
        assert reply.timing.batch_size == out.batch_size >= 1
        batched = max(batched, out.batch_size)
    # the codec items (all but raw h1 and the failures) ran as one tail batch
    assert batched == sum(1 for i, c in enumerate(cases) if c[4] is None and i % 6 != 5)


def test_all_bad_and_empty_layouts(engine) -> None:
    scale = np.array([[1]], np.int64)
    items = [Item(_request(engine, s, b"\\x00" * s, scale)) for s in (1, 2, 3)]
    for out in engine.run_batch(items):
        assert out.reply.code == wire.INVALID_ARGUMENT and "bad codec stream" in out.reply.message
    raw_only = [
        Item(_request(engine, s, np.ones((1, WIDTH), np.float32), scale, pb.TOKEN)) for s in (1, 2)
    ]
    outs = engine.run_batch(raw_only)
    assert [o.reply.code for o in outs] == [0, 0] and outs[0].batch_size == 2
    assert outs[0].reply.top_k_ids == outs[1].reply.top_k_ids
