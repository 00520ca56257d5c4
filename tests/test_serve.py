"""slicer.serve: wire format, back-end, EdgeClient, faults, sessions, metrics, load test.

A small real ONNX model (slicer.serve.toy) keeps these tests at seconds; the real models run
in bench/serve_*.py.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

grpc = pytest.importorskip("grpc")
pytest.importorskip("prometheus_client")
pytest.importorskip("onnxruntime")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import slicer  # noqa: E402
from serve_fronts import FRONTS, serve_config  # noqa: E402
from slicer.serve import (  # noqa: E402
    DeadlineExceeded,
    EdgeClient,
    ServeConfig,
    ServeError,
    ServerThread,
    TailEngine,
    make_batchable,
    wire,
)
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


@pytest.fixture(params=FRONTS)
def front(request):
    """The gRPC fronts of the grpc engine: grpc.aio (tails on a worker thread or on its
    event-loop thread), and the threaded grpc.server."""
    return request.param


@pytest.fixture(scope="module")
def split(model):
    return SplitModel(Partitioner(model), TOY_CUT, providers=["CPUExecutionProvider"], threads=1)


def expected_logits(split, inputs, params):
    """The local head -> codec -> decode -> tail answer for ``inputs``."""
    values = split.run_head({i.name: inputs[i.name] for i in split.head.get_inputs()})
    for name in ("scale",):
        values.setdefault(name, inputs[name])
    tail_in = [i.name for i in split.tail.get_inputs()]
    received, _ = decode_packet(encode_values({n: values[n] for n in tail_in}, params))
    return split.run_tail(received)["logits"]


def raw_session(target, max_bytes=8 << 20):
    """A stream that sends bytes as they are (to send what a real client never would)."""
    channel = grpc.insecure_channel(target, options=wire.channel_options(max_bytes, max_bytes))
    rpc = channel.stream_stream(
        f"/{SERVICE}/Session",
        request_serializer=lambda b: b,
        response_deserializer=pb.Reply.FromString,
    )
    return channel, rpc


def lockstep(rpc, messages):
    """Send each message after the previous one's reply: replies in message order."""
    import queue

    outq = queue.Queue()
    outq.put(messages[0])
    call = rpc(iter(outq.get, None), timeout=60)
    replies = []
    for reply in call:
        replies.append(reply)
        outq.put(messages[len(replies)] if len(replies) < len(messages) else None)
    return replies


def good_request(engine, split, seq, seed=0, sid="s1", params=PARAMS):
    inputs = toy_inputs(seed)
    values = split.run_head({i.name: inputs[i.name] for i in split.head.get_inputs()})
    values.setdefault("scale", inputs["scale"])
    packet = encode_values({n: values[n] for n in engine.tensor_names}, params)
    return pb.Request(
        wire_version=wire.WIRE_VERSION,
        model_fingerprint=engine.fingerprint,
        cut_id=engine.cut_id,
        session_id=sid,
        seq=seq,
        tensors=wire.pack_tensors(packet.streams, packet.raw),
        reply_kind=pb.OUTPUTS,
    )


# ---------------------------------------------------------------------------- wire


DTYPES = ["float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool"]


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    shape=st.lists(st.integers(0, 7), min_size=0, max_size=4),
    seed=st.integers(0, 2**16),
)
def test_raw_tensor_roundtrip(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal(shape) * 50).astype(dtype)
    msg = pb.RawTensor.FromString(wire.raw_tensor(a).SerializeToString())
    b = wire.raw_array(msg)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(1, 100), seed=st.integers(0, 1000))
def test_raw_tensor_inconsistent_sizes_are_refused(cut, seed):
    a = np.random.default_rng(seed).standard_normal((3, 5, 7)).astype(np.float32)
    msg = wire.raw_tensor(a)
    msg.data = msg.data[: max(0, len(msg.data) - cut)]
    with pytest.raises(wire.WireError) as err:
        wire.raw_array(msg)
    assert err.value.code == wire.INVALID_ARGUMENT


def test_raw_tensor_hostile_headers():
    for shape, dtype in [([2**40, 2**40], "float32"), ([-1], "int8"), ([1] * 9, "uint8")]:
        msg = pb.RawTensor(dtype=dtype, shape=shape, data=b"")
        with pytest.raises(wire.WireError):
            wire.raw_array(msg)
    with pytest.raises(wire.WireError, match="dtype"):
        wire.raw_array(pb.RawTensor(dtype="object", shape=[1], data=b"\0" * 8))
    with pytest.raises(TypeError, match="dtype"):
        wire.raw_tensor(np.array(["a"]))
    with pytest.raises(TypeError, match="array"):
        wire.raw_tensor([1, 2, 3])


def test_fingerprint_depends_on_model_and_cut(model):
    a = wire.model_fingerprint(model.SerializeToString(), "h1")
    assert a == wire.model_fingerprint(model.SerializeToString(), "h1")
    assert a != wire.model_fingerprint(model.SerializeToString(), "a1")
    assert a != wire.model_fingerprint(toy_model(seed=1).SerializeToString(), "h1")


def test_make_batchable_matches_single_runs(model):
    from slicer.split.providers import make_session

    sess = make_session(make_batchable(model), ["CPUExecutionProvider"], 1)
    xs = [toy_inputs(k) for k in range(5)]
    batch = sess.run(["logits"], {n: np.concatenate([x[n] for x in xs]) for n in xs[0]})[0]
    ref = make_session(model, ["CPUExecutionProvider"], 1)
    singles = np.concatenate([ref.run(["logits"], x)[0] for x in xs])
    np.testing.assert_allclose(batch, singles, rtol=1e-5, atol=1e-6)


def test_engine_verifies_batching(engine):
    assert engine.batched, engine.batch_note
    assert engine.tensor_names == ("scale", "h1") or set(engine.tensor_names) == {"scale", "h1"}


# ---------------------------------------------------------------------------- serving


def test_replies_match_the_local_split_model(engine, model, split, front):
    config = serve_config(front, max_batch=8, batch_window_ms=5)
    with ServerThread(engine, config) as server:
        with EdgeClient(server.target, model, params=PARAMS) as edge:
            futures = [edge.submit(edge.prepare(toy_inputs(k))) for k in range(40)]
            results = [f.result() for f in futures]
            for k, r in enumerate(results):
                want = expected_logits(split, toy_inputs(k), PARAMS)
                np.testing.assert_allclose(r.outputs["logits"], want, rtol=1e-4, atol=1e-5)
            assert max(r.timing["batch_size"] for r in results) > 1  # batched across requests
            top = edge.infer(toy_inputs(3), reply="top_k", top_k=3)
            want = expected_logits(split, toy_inputs(3), PARAMS)[0]
            assert top.top_k_ids == list(np.argsort(-want, kind="stable")[:3])
            np.testing.assert_allclose(top.top_k_values, np.sort(want)[::-1][:3], rtol=1e-5)
            assert edge.infer(toy_inputs(3), reply="token").token == int(np.argmax(want))
            raw = EdgeClient(server.target, model, params=None)
            exact = raw.infer(toy_inputs(4)).outputs["logits"]
            raw.close()
            np.testing.assert_allclose(exact, split.run_full(toy_inputs(4))["logits"], rtol=1e-5)
            assert edge.stats.duplicates == 0 and edge.stats.sent == 42


@pytest.mark.parametrize("workers", [0, 1])
def test_workers_zero_runs_tails_on_the_event_loop_thread(engine, model, monkeypatch, workers):
    run_batch, threads = engine.run_batch, set()

    def recording_run_batch(items):
        threads.add(threading.current_thread())
        return run_batch(items)

    monkeypatch.setattr(engine, "run_batch", recording_run_batch)
    config = ServeConfig(workers=workers, max_batch=4)
    with ServerThread(engine, config) as server:
        with EdgeClient(server.target, model, params=PARAMS) as edge:
            futures = [edge.submit(edge.prepare(toy_inputs(k))) for k in range(6)]
            assert len([f.result() for f in futures]) == 6
        loop_thread = server._thread
    assert threads == {loop_thread} if workers == 0 else loop_thread not in threads


def test_cloud_only_engine(model, split):
    engine = TailEngine(model, None)
    assert engine.cut_id == -1 and set(engine.tensor_names) == {"x", "scale"}
    with ServerThread(engine) as server, EdgeClient(server.target, model) as edge:
        got = edge.infer(toy_inputs(5)).outputs["logits"]
    np.testing.assert_allclose(got, split.run_full(toy_inputs(5))["logits"], rtol=1e-5)


def test_bad_messages_get_their_status_and_the_session_lives(engine, split, front):
    config = serve_config(front, max_request_bytes=64 * 1024)
    with ServerThread(engine, config) as server:
        channel, rpc = raw_session(server.target)
        good = good_request(engine, split, 1)
        wrong_fp = good_request(engine, split, 3)
        wrong_fp.model_fingerprint = "0" * 32
        wrong_cut = good_request(engine, split, 4)
        wrong_cut.cut_id = 0
        version = good_request(engine, split, 5)
        version.wire_version = 2
        missing = good_request(engine, split, 6)
        del missing.tensors[0]
        corrupt = good_request(engine, split, 7)
        for t in corrupt.tensors:
            if t.WhichOneof("payload") == "codec":
                t.codec = t.codec[:-9] + b"\x55" * 9
        shape = good_request(engine, split, 8)
        for t in shape.tensors:
            if t.name == "scale":
                t.raw.CopyFrom(wire.raw_tensor(np.ones((1, 2), np.int64)))
        oversize = good_request(engine, split, 9)
        oversize.tensors[0].raw.CopyFrom(wire.raw_tensor(np.ones((1, 20000), np.int64)))
        other_sid = good_request(engine, split, 10, sid="someone-else")
        topk = good_request(engine, split, 11)
        topk.reply_kind, topk.top_k = pb.TOP_K, 0
        messages = [
            (good.SerializeToString(), wire.OK),
            (good.SerializeToString()[:-7], wire.INVALID_ARGUMENT),  # truncated protobuf
            (b"\xff\xff\xff\xff\x0f", wire.INVALID_ARGUMENT),  # not protobuf
            (wrong_fp.SerializeToString(), wire.FAILED_PRECONDITION),
            (wrong_cut.SerializeToString(), wire.FAILED_PRECONDITION),
            (version.SerializeToString(), wire.FAILED_PRECONDITION),
            (missing.SerializeToString(), wire.INVALID_ARGUMENT),
            (corrupt.SerializeToString(), wire.INVALID_ARGUMENT),
            (shape.SerializeToString(), wire.INVALID_ARGUMENT),
            (oversize.SerializeToString(), wire.INVALID_ARGUMENT),
            (other_sid.SerializeToString(), wire.INVALID_ARGUMENT),
            (topk.SerializeToString(), wire.INVALID_ARGUMENT),
            (good.SerializeToString(), wire.OUT_OF_RANGE),  # seq 1 again: out of order
            (good_request(engine, split, 12).SerializeToString(), wire.OK),
        ]
        replies = lockstep(rpc, [m for m, _ in messages])
        channel.close()
        assert [r.code for r in replies] == [c for _, c in messages], [r.message for r in replies]
        assert all(r.message for r in replies if r.code != wire.OK)
        assert replies[-1].outputs and replies[-1].seq == 12
        assert "exceeds the cap" in replies[9].message
        assert server.backend.sessions == {}


def test_a_server_fault_while_admitting_is_answered_internal_and_logged(
    engine, split, front, monkeypatch, caplog
):
    """An exception inside the server's own admission code is not a vanished client: the
    message gets INTERNAL with the request's seq, the fault is logged, and the session goes on
    (it used to end the stream silently, as if the client had half-closed)."""
    from slicer.serve.server import Backend

    original = Backend._admit_one

    def faulty(self, parsed, size, replies, box):
        if isinstance(parsed, pb.Request) and parsed.seq == 2:
            raise ZeroDivisionError("injected fault")
        return original(self, parsed, size, replies, box)

    monkeypatch.setattr(Backend, "_admit_one", faulty)
    with (
        caplog.at_level("ERROR", logger="slicer.serve"),
        ServerThread(engine, serve_config(front)) as server,
    ):
        channel, rpc = raw_session(server.target)
        messages = [good_request(engine, split, seq).SerializeToString() for seq in (1, 2, 3)]
        replies = lockstep(rpc, messages)
        channel.close()
    assert [(r.code, r.seq) for r in replies] == [(wire.OK, 1), (wire.INTERNAL, 2), (wire.OK, 3)]
    assert "ZeroDivisionError" in replies[1].message
    assert replies[2].outputs
    assert any("admitting a message failed" in r.getMessage() for r in caplog.records)


def test_queue_full_answers_resource_exhausted_with_a_retry_hint(
    engine, model, split, monkeypatch, front
):
    run_batch = engine.run_batch

    def slow_run_batch(items):  # a tail slower than a burst of requests: the queue of two fills
        time.sleep(0.01)
        return run_batch(items)

    monkeypatch.setattr(engine, "run_batch", slow_run_batch)
    config = serve_config(front, max_queue=2, max_batch=1, batch_window_ms=50, workers=1)
    # Tails on the event-loop thread admit nothing while one runs, and read a stream one
    # message per pass of the loop between runs: one stream cannot outrun the queue there,
    # several streams at once can.
    streams = 6 if front == "aio-inline" else 1

    def burst(sid: str) -> list:
        channel, rpc = raw_session(server.target)
        msgs = [
            good_request(engine, split, s, seed=s, sid=sid).SerializeToString()
            for s in range(1, 31)
        ]
        replies = list(rpc(iter(msgs), timeout=60))
        channel.close()
        return replies

    with ServerThread(engine, config) as server:
        with ThreadPoolExecutor(streams) as pool:
            answered = list(pool.map(burst, [f"s{k}" for k in range(streams)]))
        replies = [r for rs in answered for r in rs]
        codes = [r.code for r in replies]
        assert [len(rs) for rs in answered] == [30] * streams
        assert wire.RESOURCE_EXHAUSTED in codes and wire.OK in codes
        assert set(codes) <= {wire.OK, wire.RESOURCE_EXHAUSTED}
        assert all(r.retry_after_ms > 0 for r in replies if r.code == wire.RESOURCE_EXHAUSTED)
        # the client retries after the hint: every request is answered
        with EdgeClient(server.target, model, params=PARAMS) as edge:
            # prepared first, then sent back to back: the burst must outrun a queue of two
            prepared = [edge.prepare(toy_inputs(k)) for k in range(20)]
            futures = [edge.submit(p) for p in prepared]
            results = [f.result() for f in futures]
            assert edge.stats.retries > 0 or front == "aio-inline"
            for k, r in enumerate(results):
                want = expected_logits(split, toy_inputs(k), PARAMS)
                np.testing.assert_allclose(r.outputs["logits"], want, rtol=1e-4, atol=1e-5)


def test_session_cap_idle_expiry_and_stream_end(engine, model, split, front):
    config = serve_config(front, max_sessions=1, session_idle_s=0.4)
    with ServerThread(engine, config) as server:
        edge = EdgeClient(server.target, model, params=PARAMS)
        edge.infer(toy_inputs(0))
        assert list(server.backend.sessions) == [edge.session_id]
        other = EdgeClient(server.target, model, params=PARAMS, reconnect_tries=0)
        with pytest.raises(ServeError) as err:
            other.infer(toy_inputs(1), deadline_s=10)
        assert err.value.code == wire.RESOURCE_EXHAUSTED, err.value
        other.close()
        time.sleep(1.5)  # idle: the server ends the session
        assert server.backend.sessions == {}
        r = edge.infer(toy_inputs(2))  # a new stream, transparently
        assert r.outputs["logits"].shape == (1, 10)
        edge.close()
        for _ in range(100):
            if not server.backend.sessions:
                break
            time.sleep(0.02)
        assert server.backend.sessions == {}  # stream end = session end
        # the stream of an idle session ends with DEADLINE_EXCEEDED (after its reply)
        channel, rpc = raw_session(server.target)
        hold = threading.Event()

        def one_then_wait(seq):
            yield good_request(engine, split, seq, sid="idle-1").SerializeToString()
            hold.wait(10)

        call = rpc(one_then_wait(1), timeout=10)
        replies = []
        with pytest.raises(grpc.RpcError) as ended:
            for reply in call:
                replies.append(reply)
        hold.set()
        channel.close()
        assert [r.code for r in replies] == [wire.OK]
        assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, ended.value
        assert "idle" in ended.value.details()


def test_session_takeover_ends_the_old_stream_with_aborted(engine, split, front):
    with ServerThread(engine, serve_config(front)) as server:
        channel, rpc = raw_session(server.target)
        hold = threading.Event()

        def one_then_wait(seq):
            yield good_request(engine, split, seq, sid="taken").SerializeToString()
            hold.wait(10)

        first = rpc(one_then_wait(1), timeout=10)
        assert next(first).code == wire.OK
        second = rpc(one_then_wait(2), timeout=10)
        assert next(second).code == wire.OK  # the new stream took the session over
        with pytest.raises(grpc.RpcError) as ended:
            next(first)
        assert ended.value.code() == grpc.StatusCode.ABORTED, ended.value
        hold.set()
        channel.close()


def test_reconnect_after_server_restart(engine, model, split):
    server = ServerThread(engine, ServeConfig())
    port = server.running.port
    edge = EdgeClient(
        server.target, model, params=PARAMS, backoff_s=(0.05, 0.5), reconnect_tries=20
    )
    edge.infer(toy_inputs(0))
    server.stop()
    restarted = {}

    def restart():
        time.sleep(0.5)
        restarted["server"] = ServerThread(engine, ServeConfig(port=port))

    t = threading.Thread(target=restart)
    t.start()
    result = edge.infer(toy_inputs(1), deadline_s=30)
    t.join()
    np.testing.assert_allclose(
        result.outputs["logits"],
        expected_logits(split, toy_inputs(1), PARAMS),
        rtol=1e-4,
        atol=1e-5,
    )
    assert edge.stats.reconnects >= 1
    edge.close()
    restarted["server"].stop()


def test_deadline(engine, model):
    with ServerThread(engine, ServeConfig(batch_window_ms=800)) as server:
        with EdgeClient(server.target, model, params=PARAMS) as edge:
            with pytest.raises(DeadlineExceeded):
                edge.infer(toy_inputs(0), deadline_s=0.1)
            assert isinstance(DeadlineExceeded("x"), TimeoutError)


def test_metrics_and_health(engine, model):
    with ServerThread(engine, ServeConfig()) as server:
        port = server.running.metrics_port
        with EdgeClient(server.target, model, params=PARAMS) as edge:
            for k in range(3):
                edge.infer(toy_inputs(k))
            health = edge._channel.unary_unary(
                f"/{SERVICE}/Health",
                request_serializer=pb.HealthRequest.SerializeToString,
                response_deserializer=pb.HealthReply.FromString,
            )(pb.HealthRequest(), timeout=5)
            assert health.live and health.ready and health.sessions == 1
        base = f"http://127.0.0.1:{port}"
        text = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
        from slicer.serve.metrics import parse

        m = parse(text)
        assert m['slicer_serve_requests_total{code="OK"}'] == 3
        assert m["slicer_serve_batch_size_count"] >= 1
        assert m["slicer_serve_request_bytes_total"] > 0
        assert m["slicer_serve_compute_cpu_seconds_total"] > 0
        assert "process_resident_memory_bytes" in m
        assert urllib.request.urlopen(base + "/healthz", timeout=5).status == 200
        assert urllib.request.urlopen(base + "/readyz", timeout=5).status == 200


def test_client_refuses_another_model_and_bad_arguments(engine):
    with ServerThread(engine) as server:
        with pytest.raises(ValueError, match="fingerprint"):
            EdgeClient(server.target, toy_model(seed=1))
        with pytest.raises(ValueError, match="deadline_s"):
            EdgeClient(server.target, deadline_s=0)
        with EdgeClient(server.target) as edge:
            with pytest.raises(ValueError, match="without a model"):
                edge.prepare(toy_inputs(0))
            with pytest.raises(ValueError, match="reply"):
                edge.submit([], reply="everything")
            with pytest.raises(ServeError) as err:  # no tensors at all
                edge.send({}, {})
            assert err.value.code == wire.INVALID_ARGUMENT
    with pytest.raises(ValueError, match="target"):
        EdgeClient("localhost")
    with pytest.raises(ValueError, match="max_batch"):
        ServeConfig(max_batch=0)
    with pytest.raises(ValueError, match="batch_window_ms"):
        ServeConfig(batch_window_ms=-1)


def test_settings_files(tmp_path):
    from slicer.serve.cli import load_settings

    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"cut": {"index": 2, "name": "h1"}, "params": {"sparsity": 0.7}}))
    cut, params = load_settings(str(plan))
    assert cut == "h1" and params.sparsity == 0.7
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(
        json.dumps(
            {
                "slicer_settings": 1,
                "cuts": [
                    {"index": 1, "name": "a1", "status": "unreachable", "params": {}},
                    {"index": 2, "name": "h1", "status": "ok", "params": {"bits": 6}},
                ],
            }
        )
    )
    cut, params = load_settings(str(settings_file))
    assert cut == "h1" and params.bits == 6
    assert load_settings(str(settings_file), "1")[0] == "a1"
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    with pytest.raises(ValueError, match="cannot read"):
        load_settings(str(bad))
    bad.write_text(json.dumps({"what": 1}))
    with pytest.raises(ValueError, match="neither"):
        load_settings(str(bad))


def test_loadtest_real_processes(tmp_path, capsys):
    """A few client processes, a few hundred requests, a real server process."""
    from slicer.cli import main

    plot = tmp_path / "fig2.png"
    code = main(
        [
            "loadtest", "toy", "--split", "h1", "--clients", "1,3", "--requests", "60",
            "--setups", "raw,slicer", "--json", "--plot", str(plot), "--sparsity", "0.5",
        ]
    )  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    s = report["summary"]
    assert s["requests"] == 2 * (60 + 180)
    assert s["lost"] == 0 and s["duplicated"] == 0 and s["mismatched"] == 0
    assert all(r["ok"] == r["requests"] for r in report["runs"])
    assert (
        report["setups"]["slicer"]["request_bytes_mean"]
        < report["setups"]["raw"]["request_bytes_mean"]
    )
    assert plot.stat().st_size > 1000


def test_codec_decode_of_a_hostile_stream_is_refused_by_size(engine):
    """A codec stream claiming a huge tensor is refused by the element cap, not allocated."""
    x = np.ones((64, 64, 64), np.float32)
    stream = slicer.encode(x, sparsity=0.5)
    req = pb.Request(
        wire_version=1,
        model_fingerprint=engine.fingerprint,
        cut_id=engine.cut_id,
        session_id="s",
        seq=1,
        tensors=[
            pb.Tensor(name="h1", codec=stream),
            pb.Tensor(name="scale", raw=wire.raw_tensor(np.ones((1, 1), np.int64))),
        ],
    )
    from slicer.serve.engine import Item

    [out] = engine.run_batch([Item(req)])
    assert out.reply.code == wire.INVALID_ARGUMENT and "h1" in out.reply.message


def test_loadtest_requests_carry_side_strings(model, tmp_path):
    """The coded set-up sends the toy's int64 ``scale`` as its lossless side string (what
    EdgeClient sends), and the request sizes count that string; the raw set-up sends it raw."""
    import onnx

    from slicer.serve import wire_pb2 as pb
    from slicer.serve.loadtest import prepare
    from slicer.serve.toy import toy_inputs
    from slicer.split.side import decode_side
    from slicer.split.transport import CodecParams

    path = tmp_path / "toy.onnx"
    onnx.save(model, str(path))
    part = Partitioner(str(path))
    cut = part.find_cut(TOY_CUT)
    inputs = [toy_inputs(k) for k in range(3)]
    kinds = {}
    for setup in ("raw", "slicer"):
        prep = prepare(setup, part, cut, inputs, CodecParams())
        for blobs, size, x in zip(prep.tensors, prep.request_bytes, inputs, strict=True):
            msgs = [pb.Tensor.FromString(b) for b in blobs]
            assert size == sum(len(b) for b in blobs)
            scale = next(m for m in msgs if m.name == "scale")
            kinds[setup] = scale.WhichOneof("payload")
            if kinds[setup] == "side":
                np.testing.assert_array_equal(decode_side(scale.side), x["scale"])
    assert kinds == {"raw": "raw", "slicer": "side"}


def test_loadtest_reply_check_catches_mismatches():
    from slicer.serve.client import Result
    from slicer.serve.loadtest import LoadConfig, _matches

    rng = np.random.default_rng(0)
    logits = rng.standard_normal((1, 100)).astype(np.float32)
    other = rng.standard_normal((1, 100)).astype(np.float32)
    cfg = LoadConfig(model="toy")

    def res(outputs=None, ids=(), vals=()):
        return Result(1, 1, outputs or {}, list(ids), list(vals), "s", 0.0)

    assert _matches(res({"logits": logits + 1e-6}), [logits], cfg)
    assert not _matches(res({"logits": other}), [logits], cfg)
    assert not _matches(res({"logits": logits[:, :50]}), [logits], cfg)
    top = LoadConfig(model="toy", reply="top_k", top_k=5)
    ids = np.argsort(-logits[0])[:5]
    assert _matches(res(ids=ids, vals=logits[0, ids]), [logits], top)
    wrong = np.argsort(-other[0])[:5]
    assert not _matches(res(ids=wrong, vals=other[0, wrong]), [logits], top)
    assert not _matches(res(ids=ids[:4], vals=logits[0, ids[:4]]), [logits], top)
    with pytest.raises(ValueError, match="reply"):
        LoadConfig(model="toy", reply="logits")


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.integers(-3, 3), min_size=1, max_size=40),
    k=st.integers(1, 45),
)
def test_top_k_ids_match_a_stable_sort(values, k):
    """The partial sort gives the full stable sort's answer, ties (here many) included."""
    row = np.asarray(values, dtype=np.float32)
    want = np.argsort(-row, kind="stable")[: min(k, row.size)]
    np.testing.assert_array_equal(wire.top_k_ids(row, k), want)
    with_nan = np.append(row, np.float32("nan"))
    want = np.argsort(-with_nan, kind="stable")[: min(k, with_nan.size)]
    np.testing.assert_array_equal(wire.top_k_ids(with_nan, k), want)


def test_client_command(engine, model, tmp_path, capsys, monkeypatch):
    """``slicer client`` against a running server: the head runs in the command."""
    import onnx

    from slicer.cli import main

    path = tmp_path / "toy.onnx"
    onnx.save(model, str(path))
    np.savez(tmp_path / "x.npz", **toy_inputs(7))
    with ServerThread(engine) as server:
        code = main(
            [
                "client", str(path), "--target", server.target, "--inputs",
                str(tmp_path / "x.npz"), "--requests", "3", "--reply", "top_k", "--top-k", "3",
                "--sparsity", "0.5", "--json",
            ]
        )  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["requests"] == 3 and len(out["top_k_ids"]) == 3
    assert out["cut"] == TOY_CUT and out["stats"]["duplicates"] == 0
    with pytest.raises(SystemExit):
        main(["client", str(path), "--reply", "everything"])
    assert main(["serve", str(tmp_path / "missing.onnx"), "--split", "h1"]) == 2
    assert main(["serve", str(path)]) == 2  # neither --split nor --settings
    assert main(["serve", "smollm2", "--llm", "--split", "middle"]) == 2
    assert "--split" in capsys.readouterr().err


def test_tensor_server_refuses_llm_messages(engine, split):
    with ServerThread(engine) as server:
        channel, rpc = raw_session(server.target)
        req = good_request(engine, split, 1)
        req.llm_message = b"SL\x01"
        [reply] = lockstep(rpc, [req.SerializeToString()])
        channel.close()
    assert reply.code == wire.INVALID_ARGUMENT and "llm_message" in reply.message


def test_serve_sets_grpc_experiments_before_grpc_loads():
    """`slicer serve` polls its sockets without gRPC's event-engine threads unless told not to;
    importing the serve package (its CLI) must not load gRPC, or the setting comes too late."""
    import os
    import subprocess
    import sys

    code = (
        "import os, sys\n"
        "from slicer.serve.cli import _grpc_experiments\n"
        "assert 'grpc' not in sys.modules\n"
        "_grpc_experiments(None)\n"
        "print(repr(os.environ.get('GRPC_EXPERIMENTS')))\n"
        "_grpc_experiments('')\n"  # gRPC's own defaults
        "print(repr(os.environ.get('GRPC_EXPERIMENTS')))\n"
        "os.environ['GRPC_EXPERIMENTS'] = '-event_engine_client'\n"
        "_grpc_experiments(None)\n"  # the environment's wins
        "print(repr(os.environ.get('GRPC_EXPERIMENTS')))\n"
        "import grpc\n"
        "_grpc_experiments('-event_engine_listener')\n"  # too late: left as is
        "print(repr(os.environ.get('GRPC_EXPERIMENTS')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == [
        repr("-event_engine_listener"),
        "None",
        repr("-event_engine_client"),
        repr("-event_engine_client"),
    ]
    assert "already loaded" in done.stderr
