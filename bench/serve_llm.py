"""LLM sessions through a real ``slicer serve --llm`` process: server CPU per decode step.

    python bench/serve_llm.py [--model smollm2] [--cut 11] [--sessions 2] [--new 32]
        [--codec raw|fp16|slicer] [--json OUT.json]

``--sessions`` client sessions (threads of this process, one EdgeSession + EdgeClient each)
generate ``--new`` tokens each from different prompts, one decode step after another; the
server's CPU time (process, all threads) and its tail compute (thread CPU inside the tail
runs, ``slicer_serve_compute_cpu_seconds_total``) are read over the whole run. With the
lossless ``raw`` codec the tokens are checked against the un-split model's greedy tokens.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import numpy as np

PROMPTS = (
    "The three primary colours are",
    "Water boils at",
    "A good night's sleep",
    "The capital of France is",
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--cut", type=int, default=11)
    ap.add_argument("--sessions", type=int, default=2)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--codec", default="raw", choices=("raw", "fp16", "slicer"))
    ap.add_argument("--json", help="write the result JSON here")
    args = ap.parse_args(argv)
    if not 1 <= args.sessions <= len(PROMPTS):
        raise SystemExit(f"--sessions must be in 1..{len(PROMPTS)}")

    from slicer.llm import EdgeSession, export, reference_greedy
    from slicer.serve import EdgeClient
    from slicer.serve.loadtest import LoadConfig, ServerProcess

    tok = export.tokenizer(args.model)
    prompts = [[int(t) for t in tok(p)["input_ids"]] for p in PROMPTS[: args.sessions]]
    config = LoadConfig(model=args.model, clients=[args.sessions], max_queue=64)
    server = ServerProcess(
        args.model, str(args.cut), config, ["--llm", "--llm-sessions", str(args.sessions)]
    )
    result: dict = {"model": args.model, "cut": args.cut, "sessions": args.sessions}
    try:
        edges = [
            EdgeSession(args.model, args.cut, args.codec, session_id=100 + i)
            for i in range(args.sessions)
        ]
        clients = [EdgeClient(server.target, session_id=f"bench-{i}") for i in range(args.sessions)]
        tokens: list[list[int]] = [[] for _ in edges]
        latency: list[float] = []
        up: list[int] = []
        m0, cpu0 = server.metrics(), server.cpu_s()
        t0 = time.perf_counter()

        def run(i: int) -> None:
            edges[i].start(prompts[i])
            msg = edges[i].offload()
            while True:
                start = time.perf_counter()
                reply = clients[i].send_llm(msg, deadline_s=120)
                latency.append(time.perf_counter() - start)
                up.append(len(msg))
                tokens[i].append(edges[i].receive(reply))
                if len(tokens[i]) >= args.new:
                    return
                msg = edges[i].decode_message()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(args.sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        wall = time.perf_counter() - t0
        cpu, m1 = server.cpu_s() - cpu0, server.metrics()
        key = "slicer_serve_compute_cpu_seconds_total"
        compute = m1[key] - m0.get(key, 0.0)
        steps = sum(len(t) for t in tokens)
        for c in clients:
            c.close()
        lat = np.asarray(latency[args.sessions :])  # decode steps (prefills excluded)
        result.update(
            {
                "codec": args.codec,
                "steps": steps,
                "wall_s": wall,
                "server_cpu_ms_per_step": 1e3 * cpu / steps,
                "tail_cpu_ms_per_step": 1e3 * compute / steps,
                "overhead": (cpu - compute) / compute,
                "decode_step_latency_ms": {
                    "p50": float(np.percentile(lat, 50) * 1e3),
                    "p99": float(np.percentile(lat, 99) * 1e3),
                },
                "bytes_up_per_decode_step": float(np.mean(up[args.sessions :])),
            }
        )
        if args.codec == "raw":
            want = [reference_greedy(args.model, p, args.new) for p in prompts]
            result["tokens_match_unsplit"] = tokens == want
    finally:
        server.stop()
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
