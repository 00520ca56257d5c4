"""Ray Serve scale-out: a local Ray cluster (127.0.0.1), two replicas behind the gRPC front.

Checks replies against the local split model and session affinity (every reply of a session
comes from one replica; sessions spread over both). Skipped when ray is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("grpc")
ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'slicer-codec[ray]')")
pytest.importorskip("ray.serve")

from slicer.serve import EdgeClient, ServeConfig, ServerThread  # noqa: E402
from slicer.serve.ray_engine import HashRing, RayCluster, start_ray  # noqa: E402
from slicer.serve.toy import TOY_CUT, save_toy, toy_inputs  # noqa: E402
from slicer.split import CodecParams, Partitioner, SplitModel  # noqa: E402
from slicer.split.transport import decode_packet, encode_values  # noqa: E402

PARAMS = CodecParams(sparsity=0.5)


def test_hash_ring_is_stable_and_balanced():
    ring = HashRing(2)
    owners = [ring.owner(f"session-{i}") for i in range(2000)]
    assert owners == [HashRing(2).owner(f"session-{i}") for i in range(2000)]
    assert 0.35 < np.mean(owners) < 0.65
    three = HashRing(3)  # adding a replica moves about a third of the sessions, not all
    moved = np.mean([three.owner(f"session-{i}") != o for i, o in enumerate(owners)])
    assert moved < 0.5
    with pytest.raises(ValueError, match="replicas"):
        HashRing(0)


def test_two_replicas_reply_and_keep_sessions(tmp_path):
    path = str(save_toy(tmp_path / "toy.onnx"))
    split = SplitModel(Partitioner(path), TOY_CUT, providers=["CPUExecutionProvider"], threads=1)
    config = ServeConfig(max_batch=8, batch_window_ms=5)
    cluster = RayCluster(path, TOY_CUT, replicas=2, config=config, num_cpus=2)
    try:
        assert cluster.cold_start_s > 0 and cluster.idle_rss > 0
        server = ServerThread(None, config, starter=lambda: start_ray(cluster, config))
        ring = HashRing(2)
        sids, i = {0: None, 1: None}, 0
        while None in sids.values():  # one session per replica
            sid = f"edge-{i}"
            sids.setdefault(ring.owner(sid), sid)
            if sids[ring.owner(sid)] is None:
                sids[ring.owner(sid)] = sid
            i += 1
        seen = {}
        try:
            for replica, sid in sids.items():
                with EdgeClient(server.target, path, params=PARAMS, session_id=sid) as edge:
                    assert edge.info.engine == "ray"
                    futures = [edge.submit(edge.prepare(toy_inputs(k))) for k in range(12)]
                    results = [f.result() for f in futures]
                    for k, r in enumerate(results):
                        x = toy_inputs(k)
                        values = split.run_head(
                            {i.name: x[i.name] for i in split.head.get_inputs()}
                        )
                        values.setdefault("scale", x["scale"])
                        names = [t.name for t in split.tail.get_inputs()]
                        got, _ = decode_packet(encode_values({n: values[n] for n in names}, PARAMS))
                        want = split.run_tail(got)["logits"]
                        np.testing.assert_allclose(r.outputs["logits"], want, rtol=1e-4, atol=1e-5)
                    seen[replica] = {r.server_id for r in results}
                    assert edge.stats.duplicates == 0
        finally:
            server.stop()
        assert all(len(ids) == 1 for ids in seen.values()), seen  # affinity
        assert seen[0] != seen[1]  # two replicas really served
        assert {next(iter(s)) for s in seen.values()} == set(cluster.replica_ids)
    finally:
        cluster.shutdown()
