"""SessionBatched: several requests per gRPC message, several replies per message.

Each request of a RequestBatch must be admitted, validated and answered exactly as on a
Session stream; only the framing differs. Both gRPC fronts serve it.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

grpc = pytest.importorskip("grpc")
pytest.importorskip("prometheus_client")
pytest.importorskip("onnxruntime")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from serve_fronts import FRONTS, serve_config  # noqa: E402
from slicer.serve import EdgeClient, ServeConfig, ServerThread, TailEngine, wire  # noqa: E402
from slicer.serve import wire_pb2 as pb  # noqa: E402
from slicer.serve.server import SERVICE  # noqa: E402
from slicer.serve.toy import TOY_CUT, toy_inputs, toy_model  # noqa: E402
from slicer.split import CodecParams, Partitioner, SplitModel  # noqa: E402
from slicer.split.transport import decode_packet, encode_values  # noqa: E402

PARAMS = CodecParams(sparsity=0.5, bits=8)


@pytest.fixture(scope="module")
def model():
    return toy_model()


@pytest.fixture(scope="module")
def engine(model):
    return TailEngine(model, TOY_CUT)


@pytest.fixture(scope="module")
def split(model):
    return SplitModel(Partitioner(model), TOY_CUT, providers=["CPUExecutionProvider"], threads=1)


@pytest.fixture(params=FRONTS)
def front(request):
    return request.param


def expected_logits(split, inputs):
    values = split.run_head({i.name: inputs[i.name] for i in split.head.get_inputs()})
    values.setdefault("scale", inputs["scale"])
    tail_in = [i.name for i in split.tail.get_inputs()]
    received, _ = decode_packet(encode_values({n: values[n] for n in tail_in}, PARAMS))
    return split.run_tail(received)["logits"]


def request(engine, split, seq, seed=0, sid="b1"):
    inputs = toy_inputs(seed)
    values = split.run_head({i.name: inputs[i.name] for i in split.head.get_inputs()})
    values.setdefault("scale", inputs["scale"])
    packet = encode_values({n: values[n] for n in engine.tensor_names}, PARAMS)
    return pb.Request(
        wire_version=wire.WIRE_VERSION,
        model_fingerprint=engine.fingerprint,
        cut_id=engine.cut_id,
        session_id=sid,
        seq=seq,
        tensors=wire.pack_tensors(packet.streams, packet.raw),
        reply_kind=pb.OUTPUTS,
    )


def batch(*requests) -> bytes:
    return pb.RequestBatch(requests=list(requests)).SerializeToString()


@settings(max_examples=80, deadline=None)
@given(
    seqs=st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=6),
    ids=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=300),
    message=st.text(max_size=300),
)
def test_batch_elements_concatenate_to_the_serialized_batch(seqs, ids, message):
    replies = [pb.Reply(seq=s, message=message, top_k_ids=ids) for s in seqs]
    framed = b"".join(wire.batch_element(r.SerializeToString()) for r in replies)
    assert framed == pb.ReplyBatch(replies=replies).SerializeToString()
    assert list(pb.ReplyBatch.FromString(framed).replies) == replies


def test_every_request_of_a_batch_gets_its_own_status(engine, split, front):
    config = serve_config(front, max_request_bytes=4096)
    with ServerThread(engine, config) as server:
        info = EdgeClient(server.target).info
        assert info.max_requests_per_message == wire.MAX_REQUESTS_PER_MESSAGE
        channel = grpc.insecure_channel(server.target)
        rpc = channel.stream_stream(
            f"/{SERVICE}/SessionBatched",
            request_serializer=lambda b: b,
            response_deserializer=pb.ReplyBatch.FromString,
        )
        wrong = request(engine, split, 2, seed=1)
        wrong.model_fingerprint = "0" * 32
        tiny = pb.Request(wire_version=wire.WIRE_VERSION, model_fingerprint="x", seq=1)
        big = [request(engine, split, 40 + k, seed=k) for k in range(30)]
        assert len(batch(*big)) > 4096 > max(r.ByteSize() for r in big)
        # (message, {seq: code}) in sending order; each waits for its replies
        steps = [
            (batch(request(engine, split, 1), wrong, request(engine, split, 3, seed=2)),
             {1: wire.OK, 2: wire.FAILED_PRECONDITION, 3: wire.OK}),
            (batch(), {0: wire.INVALID_ARGUMENT}),  # no requests
            (b"\xff\xff\xff\xff\x0f", {0: wire.INVALID_ARGUMENT}),  # not protobuf
            (batch(*[tiny] * 65), {1: wire.INVALID_ARGUMENT}),  # too many in one message
            (batch(*big), {r.seq: wire.INVALID_ARGUMENT for r in big}),  # over the byte cap
            (batch(request(engine, split, 3, seed=3), request(engine, split, 80, seed=4)),
             {3: wire.OUT_OF_RANGE, 80: wire.OK}),
        ]  # fmt: skip
        counts = [65 if k == 3 else len(codes) for k, (_, codes) in enumerate(steps)]
        outq: list = [steps[0][0]]
        ready = threading.Condition()

        def messages():
            sent = 0
            while sent < len(steps):
                with ready:
                    ready.wait_for(lambda n=sent: len(outq) > n, timeout=30)
                yield outq[sent]
                sent += 1
            with ready:
                ready.wait_for(lambda: outq[-1] is None, timeout=30)

        got: list[list[pb.Reply]] = [[] for _ in steps]
        call = rpc(messages(), timeout=60)
        step = 0
        per_message = []
        for message in call:
            per_message.append(len(message.replies))
            got[step].extend(message.replies)
            while step < len(steps) and len(got[step]) == counts[step]:
                step += 1
                with ready:
                    outq.append(steps[step][0] if step < len(steps) else None)
                    ready.notify_all()
            if step == len(steps):
                break
        channel.close()
        for (_, codes), replies, count in zip(steps, got, counts, strict=True):
            assert len(replies) == count
            assert {r.seq: r.code for r in replies} == codes, [r.message for r in replies]
            assert all(r.message for r in replies if r.code != wire.OK)
        assert "requests in one message" in got[3][0].message
        assert "exceeds the cap" in got[4][0].message
        assert max(per_message) > 1  # replies of one message came back together
        ok = [r for r in got[0] + got[5] if r.code == wire.OK]
        for r in ok:
            seed = {1: 0, 3: 2, 80: 4}[r.seq]
            np.testing.assert_allclose(
                wire.reply_outputs(r)["logits"],
                expected_logits(split, toy_inputs(seed)),
                rtol=1e-4,
                atol=1e-5,
            )
        for _ in range(100):
            if not server.backend.sessions:
                break
            time.sleep(0.02)
        assert server.backend.sessions == {}  # stream end = session end


def test_edge_client_batches_messages(engine, model, split, front):
    config = serve_config(front, max_batch=8, batch_window_ms=5)
    with ServerThread(engine, config) as server:
        with EdgeClient(server.target, model, params=PARAMS, batch_messages=True) as edge:
            assert edge.batch_messages
            prepared = [edge.prepare(toy_inputs(k)) for k in range(40)]
            futures = edge.submit_many(prepared)
            results = [f.result() for f in futures]
            for k, r in enumerate(results):
                np.testing.assert_allclose(
                    r.outputs["logits"], expected_logits(split, toy_inputs(k)), rtol=1e-4, atol=1e-5
                )
            assert edge.stats.sent == 40 and edge.stats.replies == 40
            assert edge.stats.messages_sent < 40 and edge.stats.messages_received < 40
            assert max(r.timing["batch_size"] for r in results) > 1
            top = edge.submit_many([prepared[3]], reply="top_k", top_k=3)[0].result()
            want = expected_logits(split, toy_inputs(3))[0]
            assert top.top_k_ids == list(np.argsort(-want, kind="stable")[:3])
            assert edge.stats.duplicates == 0
        with pytest.raises(ValueError, match="reply"):
            EdgeClient(server.target).submit_many([[]], reply="everything")


def test_edge_client_falls_back_without_session_batched(engine, model, split, monkeypatch):
    monkeypatch.setattr(wire, "MAX_REQUESTS_PER_MESSAGE", 0)  # a server without the method
    with ServerThread(engine, ServeConfig()) as server:
        with EdgeClient(server.target, model, params=PARAMS, batch_messages=True) as edge:
            assert edge.info.max_requests_per_message == 0 and not edge.batch_messages
            results = [f.result() for f in edge.submit_many([edge.prepare(toy_inputs(5))] * 3)]
            assert edge.stats.messages_sent == 3
            for r in results:
                np.testing.assert_allclose(
                    r.outputs["logits"], expected_logits(split, toy_inputs(5)), rtol=1e-4, atol=1e-5
                )


def test_batched_client_reconnects_and_resends(engine, model, split):
    server = ServerThread(engine, ServeConfig())
    port = server.running.port
    edge = EdgeClient(
        server.target,
        model,
        params=PARAMS,
        backoff_s=(0.05, 0.5),
        reconnect_tries=20,
        batch_messages=True,
    )
    edge.submit_many([edge.prepare(toy_inputs(0))])[0].result()
    server.stop()
    restarted = {}

    def restart():
        time.sleep(0.5)
        restarted["server"] = ServerThread(engine, ServeConfig(port=port))

    t = threading.Thread(target=restart)
    t.start()
    futures = edge.submit_many([edge.prepare(toy_inputs(k)) for k in (1, 2)], deadline_s=30)
    results = [f.result() for f in futures]
    t.join()
    for k, r in zip((1, 2), results, strict=True):
        np.testing.assert_allclose(
            r.outputs["logits"], expected_logits(split, toy_inputs(k)), rtol=1e-4, atol=1e-5
        )
    assert edge.stats.reconnects >= 1 and edge.stats.duplicates == 0
    edge.close()
    restarted["server"].stop()


def test_loadtest_coalesced_pipelined_clients(capsys):
    from slicer.cli import main

    code = main(
        [
            "loadtest", "toy", "--split", "h1", "--clients", "3", "--requests", "40",
            "--inflight", "4", "--coalesce", "--setups", "slicer", "--json", "--sparsity", "0.5",
        ]
    )  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["config"]["coalesce"] is True
    [run] = report["runs"]
    assert run["requests"] == 120 and run["ok"] == 120
    assert run["lost"] == 0 and run["duplicated"] == 0 and run["mismatched"] == 0


def test_batched_stream_ends_on_takeover_and_on_idle(engine, split, front):
    """A SessionBatched stream is a session like any other: another stream (of either kind)
    taking its id over ends it with ABORTED, idleness with DEADLINE_EXCEEDED."""
    config = serve_config(front, session_idle_s=0.4)
    with ServerThread(engine, config) as server:
        channel = grpc.insecure_channel(server.target)
        batched = channel.stream_stream(
            f"/{SERVICE}/SessionBatched",
            request_serializer=lambda b: b,
            response_deserializer=pb.ReplyBatch.FromString,
        )
        single = channel.stream_stream(
            f"/{SERVICE}/Session",
            request_serializer=lambda b: b,
            response_deserializer=pb.Reply.FromString,
        )
        hold = threading.Event()

        def one_then_wait(message):
            yield message
            hold.wait(10)

        first = batched(one_then_wait(batch(request(engine, split, 1, sid="t1"))), timeout=10)
        assert [r.code for r in next(first).replies] == [wire.OK]
        second = single(one_then_wait(request(engine, split, 2, sid="t1").SerializeToString()))
        assert next(second).code == wire.OK  # the session moved to the new stream
        with pytest.raises(grpc.RpcError) as ended:
            next(first)
        assert ended.value.code() == grpc.StatusCode.ABORTED, ended.value
        idle = batched(one_then_wait(batch(request(engine, split, 1, sid="t2"))), timeout=10)
        replies = []
        with pytest.raises(grpc.RpcError) as ended:
            for message in idle:
                replies.extend(message.replies)
        assert [r.code for r in replies] == [wire.OK]
        assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, ended.value
        hold.set()
        second.cancel()
        channel.close()
