"""``slicer serve | client | loadtest``: registered into the main parser by ``slicer.cli``."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

for _dep in ("grpc", "google.protobuf", "prometheus_client", "onnxruntime"):
    if importlib.util.find_spec(_dep.split(".")[0]) is None:
        raise ImportError(f"slicer serve commands need {_dep!r} (pip install 'slicer[serve]')")


def resolve_model(name: str) -> str:
    """A shipped model name (exported on first use), ``toy``, or an ONNX file."""
    from ..split import zoo

    if name in zoo.ZOO:
        return str(zoo.model_path(name))
    if name == "toy":
        from .toy import save_toy

        path = zoo.cache_dir() / "serve_toy.onnx"
        if not path.exists():
            save_toy(path)
        return str(path)
    if not Path(name).is_file():
        raise ValueError(
            f"no such ONNX file or shipped model: {name!r} (shipped: {', '.join(zoo.ZOO)}, toy)"
        )
    return name


def load_settings(path: str, split: str | None = None) -> tuple[str, Any]:
    """(cut name, CodecParams) from a ``slicer calibrate`` settings file or a ``slicer plan
    --json`` output. With several cuts in a settings file, ``split`` picks one (name or index);
    otherwise the first cut whose status is ``ok``. The cut's calibrated transform and estimator,
    if any, come from ``slicer.split.settings.transforms_for_cut`` / ``estimators_for_cut``."""
    from ..split.transport import CodecParams

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read settings {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"settings {path}: expected a JSON object")
    if isinstance(data.get("cuts"), list) and "slicer_settings" in data:
        cuts = [c for c in data["cuts"] if isinstance(c, dict)]
        if split is not None:
            chosen = [
                c for c in cuts if str(c.get("index")) == str(split) or c.get("name") == split
            ]
        else:
            chosen = [c for c in cuts if c.get("status", "ok") == "ok"]
        if not chosen:
            raise ValueError(f"settings {path}: no usable cut" + (f" {split!r}" if split else ""))
        entry = chosen[0]
        cut, params = entry.get("name"), entry.get("params", {})
    elif isinstance(data.get("cut"), dict) and "params" in data:  # slicer plan --json
        cut, params = data["cut"].get("name"), data.get("params") or {}
    else:
        raise ValueError(f"settings {path}: neither a settings file nor a plan (no 'cuts'/'cut')")
    if not isinstance(cut, str) or not isinstance(params, dict):
        raise ValueError(f"settings {path}: the cut has no name or its params are not an object")
    fields = {f.name for f in dataclasses.fields(CodecParams)}
    unknown = sorted(set(params) - fields - {"mode"})
    if unknown or params.get("mode", "topk") != "topk":
        try:
            from ..split.settings import params_from_json

            return cut, params_from_json(params)
        except ImportError:
            raise ValueError(f"settings {path}: codec params {unknown} not supported") from None
    return cut, CodecParams(**{k: v for k, v in params.items() if k in fields})


def _serve_config(args: argparse.Namespace) -> Any:
    from .server import ServeConfig

    return ServeConfig(
        host=args.host,
        port=args.port,
        metrics_port=None if args.metrics_port < 0 else args.metrics_port,
        max_batch=args.max_batch,
        batch_window_ms=args.batch_window,
        workers=args.workers,
        max_queue=args.max_queue,
        max_sessions=args.max_sessions,
        session_idle_s=args.idle,
        max_request_bytes=args.max_request_bytes,
        front=getattr(args, "front", "aio"),
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``serve``, ``client`` and ``loadtest``."""
    s = subparsers.add_parser(
        "serve",
        help="serve a model's tail to edge clients (gRPC, batching, metrics)",
        description="An embedded back-end: decodes SLICER streams and runs the tail for many "
        "clients, batching across them. Loopback by default.",
    )
    s.add_argument("model", help="ONNX file, a shipped model name, or 'toy'")
    _add_cut_options(s)
    s.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=50051, help="gRPC port (0: any free port)")
    s.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="HTTP /metrics /healthz /readyz port (0: any free port, -1: off)",
    )
    s.add_argument("--max-batch", type=int, default=16, help="requests per tail run")
    s.add_argument("--batch-window", type=float, default=2.0, help="batching window, ms")
    s.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker threads running tails (0: on the event-loop thread, no hand-off)",
    )
    s.add_argument("--threads", type=int, default=1, help="ORT intra-op threads per run")
    s.add_argument("--max-queue", type=int, default=256, help="admitted requests waiting, cap")
    s.add_argument("--max-sessions", type=int, default=1024, help="open sessions, cap")
    s.add_argument("--idle", type=float, default=60.0, help="session idle expiry, seconds")
    s.add_argument("--max-request-bytes", type=int, default=4 << 20, help="request size cap")
    s.add_argument("--no-batching", action="store_true", help="run requests one by one")
    s.add_argument(
        "--llm",
        action="store_true",
        help="serve autoregressive LLM sessions (slicer.llm: smollm2, gemma3) cut at layer --split",
    )
    s.add_argument(
        "--llm-sessions", type=int, default=4, help="LLM KV caches held (per replica), cap"
    )
    s.add_argument("--engine", choices=("grpc", "ray"), default="grpc")
    s.add_argument(
        "--front",
        choices=("aio", "sync"),
        default="aio",
        help="gRPC front of the grpc engine: asyncio (aio) or a thread per stream (sync)",
    )
    s.add_argument("--replicas", type=int, default=2, help="Ray Serve replicas (--engine ray)")
    s.add_argument(
        "--grpc-experiments",
        default=None,
        help="GRPC_EXPERIMENTS for the server (default: the environment's, else "
        f"{GRPC_EXPERIMENTS!r}: sockets polled without gRPC's event-engine threads; '' keeps "
        "gRPC's own defaults)",
    )
    s.add_argument("--ready-file", help="write a JSON line with the bound ports once serving")
    s.set_defaults(func=cmd_serve)

    c = subparsers.add_parser(
        "client", help="run the head locally, send the cut to a server, print the reply"
    )
    c.add_argument("model", help="the same model the server serves")
    c.add_argument("--target", default="127.0.0.1:50051", help="server host:port")
    c.add_argument("--inputs", help=".npz keyed by the model's input names (default: random)")
    c.add_argument("--requests", type=int, default=1, help="how many times to send")
    c.add_argument(
        "--reply", default="top_k", choices=("outputs", "logits", "top_k", "token", "embedding")
    )
    c.add_argument("--top-k", type=int, default=5)
    c.add_argument("--raw", action="store_true", help="send the cut tensors uncompressed")
    c.add_argument("--settings", help="codec settings (calibrate settings or plan JSON)")
    c.add_argument("--sparsity", type=float, default=None, help="codec sparsity (default 0.9)")
    c.add_argument("--bits", type=int, default=None)
    c.add_argument("--deadline", type=float, default=30.0, help="per-request deadline, s")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_client)

    lt = subparsers.add_parser(
        "loadtest",
        help="N real client processes against a real server: throughput, latency, server CPU",
        description="Starts servers as separate processes and forks client processes; reports "
        "throughput, p50/p99 latency, server CPU time per request and cumulative server time "
        "against N for cloud-only, split raw and split SLICER (the paper's Fig. 2).",
    )
    lt.add_argument("model", help="ONNX file, a shipped model name, or 'toy'")
    _add_cut_options(lt)
    lt.add_argument("--clients", default="1,4,16", help="client counts, e.g. 1,8,32,64")
    lt.add_argument("--requests", type=int, default=20, help="requests per client per run")
    lt.add_argument("--duration", type=float, default=60.0, help="time cap per run, s")
    lt.add_argument(
        "--setups", default="cloud,raw,slicer", help="subset of cloud,raw,slicer (comma list)"
    )
    lt.add_argument("--pool", type=int, default=4, help="distinct inputs per client")
    lt.add_argument("--inflight", type=int, default=1, help="requests in flight per client")
    lt.add_argument(
        "--reply", choices=("outputs", "top_k"), default="outputs", help="reply kind (top-5)"
    )
    lt.add_argument("--engine", choices=("grpc", "ray"), default="grpc", help="server engine")
    lt.add_argument("--replicas", type=int, default=2, help="Ray Serve replicas (--engine ray)")
    lt.add_argument(
        "--front", choices=("aio", "sync"), default="aio", help="gRPC front of the server"
    )
    lt.add_argument(
        "--coalesce",
        action="store_true",
        help="clients send several requests per message (SessionBatched; with --inflight > 1)",
    )
    lt.add_argument("--max-batch", type=int, default=16)
    lt.add_argument("--batch-window", type=float, default=2.0)
    lt.add_argument("--workers", type=int, default=1, help="the server's --workers")
    lt.add_argument("--max-queue", type=int, default=1024)
    lt.add_argument("--sparsity", type=float, default=None, help="codec sparsity (no --settings)")
    lt.add_argument("--bits", type=int, default=None)
    lt.add_argument("--blocks", type=int, default=None)
    lt.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    lt.add_argument("--plot", help="write the Fig. 2 plot (PNG)")
    lt.set_defaults(func=cmd_loadtest)


def _add_cut_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--split",
        default=None,
        help="cut name or index ('full': the whole model on the server, cloud-only)",
    )
    p.add_argument(
        "--settings", help="settings JSON (slicer calibrate) or a plan (slicer plan --json)"
    )


def _cut_and_params(args: argparse.Namespace) -> tuple[str, Any]:
    from ..split.transport import CodecParams

    if args.settings:
        cut, params = load_settings(args.settings, None if args.split == "full" else args.split)
        if args.split == "full":
            cut = "full"
    elif args.split is not None:
        cut, params = args.split, CodecParams()
    else:
        raise ValueError("give --split CUT (or 'full') or --settings FILE")
    overrides = {
        k: getattr(args, k)
        for k in ("sparsity", "bits", "blocks")
        if getattr(args, k, None) is not None
    }
    if overrides:
        params = dataclasses.replace(params, **overrides)
    return cut, params


#: GRPC_EXPERIMENTS of `slicer serve` unless the environment sets it: the listener's sockets are
#: polled by the completion-queue thread instead of gRPC's event-engine threads, one thread
#: wake-up less per message (bench/RESULTS.md §7.3.2).
GRPC_EXPERIMENTS = "-event_engine_listener"


def _grpc_experiments(value: str | None) -> None:
    """Set GRPC_EXPERIMENTS for this process before gRPC is loaded (gRPC reads it once)."""
    import os

    if value is None:
        value = os.environ.get("GRPC_EXPERIMENTS", GRPC_EXPERIMENTS)
    if "grpc" in sys.modules and os.environ.get("GRPC_EXPERIMENTS", "") != value:
        print("slicer serve: gRPC is already loaded; GRPC_EXPERIMENTS left as is", file=sys.stderr)
        return
    if value:
        os.environ["GRPC_EXPERIMENTS"] = value
    else:
        os.environ.pop("GRPC_EXPERIMENTS", None)


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    _grpc_experiments(args.grpc_experiments)
    if args.llm:
        return _serve_llm(args)
    model = resolve_model(args.model)
    cut, _ = _cut_and_params(args)
    config = _serve_config(args)
    if args.engine == "ray" and config.front != "aio":
        raise ValueError("--engine ray runs behind the asyncio front: drop --front sync")
    from ..split.settings import estimators_for_cut, transforms_for_cut

    estimators = estimators_for_cut(args.settings, cut) if args.settings else {}
    transforms = transforms_for_cut(args.settings, cut) if args.settings else {}
    if args.engine == "ray":
        from .ray_engine import serve_ray

        if estimators or transforms:
            raise ValueError(
                "--engine ray does not apply the settings' calibrated transform or "
                "decoder-side estimator: serve them with --engine grpc"
            )
        return serve_ray(model, cut, config, replicas=args.replicas, ready_file=args.ready_file)
    from .engine import TailEngine
    from .server import serve_forever

    engine = TailEngine(
        model,
        None if cut == "full" else cut,
        threads=args.threads,
        batching=not args.no_batching,
        estimators=estimators,
        transforms=transforms,
    )
    asyncio.run(serve_forever(engine, config, ready_file=args.ready_file))
    return 0


def _serve_llm(args: argparse.Namespace) -> int:
    import asyncio

    from .engine import LLMEngine
    from .server import serve_forever

    try:
        cut = int(args.split)
    except (TypeError, ValueError):
        raise ValueError(f"--llm needs --split LAYER (an integer), got {args.split!r}") from None
    if args.llm_sessions < 1:
        raise ValueError(f"--llm-sessions must be >= 1, got {args.llm_sessions}")
    if args.engine == "ray":
        from .ray_engine import serve_ray

        return serve_ray(
            args.model,
            str(cut),
            _serve_config(args),
            replicas=args.replicas,
            ready_file=args.ready_file,
            llm_sessions=args.llm_sessions,
        )
    engine = LLMEngine(args.model, cut, max_sessions=args.llm_sessions, threads=args.threads)
    asyncio.run(serve_forever(engine, _serve_config(args), ready_file=args.ready_file))
    return 0


def cmd_client(args: argparse.Namespace) -> int:
    from ..split.transport import CodecParams
    from .client import EdgeClient, ServeError

    params: Any = CodecParams()
    transforms: dict[str, Any] = {}
    if args.settings:
        from ..split.settings import transforms_for_cut

        cut, params = load_settings(args.settings)
        transforms = transforms_for_cut(args.settings, cut)
    if args.sparsity is not None or args.bits is not None:
        over = {k: getattr(args, k) for k in ("sparsity", "bits") if getattr(args, k) is not None}
        params = dataclasses.replace(params, **over)
    if args.raw:
        params = None
    model = resolve_model(args.model)
    try:
        edge = EdgeClient(
            args.target, model, params=params, transforms=transforms, deadline_s=args.deadline
        )
    except ServeError as exc:  # refused at connect (wire version, transform)
        raise ValueError(f"{args.target}: {exc}") from None
    with edge:
        from ..split.providers import make_session
        from ..split.runner import load_inputs, random_inputs

        full = make_session(
            edge.partitioner.model, ["CPUExecutionProvider"], 1, edge.partitioner.external_dir
        )
        inputs = load_inputs(args.inputs, full) if args.inputs else random_inputs(full)
        results = [
            edge.infer(inputs, reply=args.reply, top_k=args.top_k) for _ in range(args.requests)
        ]
        last = results[-1]
        out = {
            "target": args.target,
            "server_id": last.server_id,
            "cut": edge.info.cut_name,
            "requests": len(results),
            "request_bytes": last.request_bytes,
            "latency_ms": [round(r.latency_s * 1e3, 3) for r in results],
            "timing_us": last.timing,
            "top_k_ids": last.top_k_ids,
            "top_k_values": last.top_k_values,
            "outputs": {n: list(a.shape) for n, a in last.outputs.items()},
            "stats": dataclasses.asdict(edge.stats),
        }
    if args.json:
        json.dump(out, sys.stdout, indent=1)
        print()
    else:
        for k, v in out.items():
            print(f"{k:14} {v}")
    return 0


def cmd_loadtest(args: argparse.Namespace) -> int:
    from .loadtest import LoadConfig, print_report, run_loadtest

    cut, params = _cut_and_params(args) if (args.split or args.settings) else (None, None)
    try:
        clients = [int(c) for c in str(args.clients).split(",") if c.strip()]
    except ValueError:
        raise ValueError(f"--clients must be a comma list of integers: {args.clients!r}") from None
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    config = LoadConfig(
        model=args.model,
        cut=cut,
        params=params,
        clients=clients,
        requests=args.requests,
        duration_s=args.duration,
        setups=setups,
        pool=args.pool,
        inflight=args.inflight,
        max_batch=args.max_batch,
        batch_window_ms=args.batch_window,
        workers=args.workers,
        max_queue=args.max_queue,
        reply=args.reply,
        engine=args.engine,
        replicas=args.replicas,
        front=args.front,
        coalesce=args.coalesce,
        settings=args.settings if args.settings and cut != "full" else None,
    )
    report = run_loadtest(config, progress=not args.json or sys.stderr.isatty())
    if args.plot:
        from .loadtest import plot_report

        plot_report(report, args.plot)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        print_report(report)
    bad = sum(r["lost"] + r["duplicated"] + r["mismatched"] for r in report["runs"])
    return 0 if bad == 0 else 1
