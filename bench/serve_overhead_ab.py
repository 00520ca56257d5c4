"""Server overhead at N = 32, two builds alternated in one session (RESULTS §7.3).

Runs ``slicer loadtest efficientnet-lite0 --settings bench/serve_settings/plan_effnet.json
--clients 32 --requests 40 --setups slicer --reply top_k --json`` with the interpreter of each
build in turn (A B A B ...), and writes every run plus a summary to --out.

    python bench/serve_overhead_ab.py --a /path/to/before/python --b /path/to/after/python \\
        --repeats 3 --out bench/serve_results/overhead32_batch_decode.json

``--a-args`` / ``--b-args`` add loadtest options to one side (e.g. ``--b-args "--front sync"``
compares the two gRPC fronts of one build: ``--a`` and ``--b`` may be the same interpreter).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess

CMD = [
    "-m", "slicer", "loadtest", "efficientnet-lite0",
    "--settings", "bench/serve_settings/plan_effnet.json",
    "--clients", "32", "--requests", "40", "--setups", "slicer", "--reply", "top_k", "--json",
]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="python of build A (before)")
    ap.add_argument("--b", required=True, help="python of build B (after)")
    ap.add_argument("--a-args", default="", help="extra loadtest options for A")
    ap.add_argument("--b-args", default="", help="extra loadtest options for B")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"a": [], "b": []}
    for _ in range(args.repeats):
        for key in ("a", "b"):
            done = subprocess.run(
                ["nice", getattr(args, key), *CMD, *shlex.split(getattr(args, f"{key}_args"))],
                capture_output=True,
                text=True,
                check=True,
            )
            run = json.loads(done.stdout)["runs"][0]
            run["loadavg_1min"] = os.getloadavg()[0]
            runs[key].append(run)
            print(
                key,
                f"load {run['loadavg_1min']:.2f}",
                f"overhead {100 * run['overhead']:.1f} %",
                f"server {run['server_cpu_ms_per_request']:.3f} ms/req",
                f"tail {1e3 * run['compute_cpu_s'] / run['ok']:.3f} ms/req",
                f"ok {run['ok']}/{run['requests']}",
                "threads",
                run.get("server_threads_ms_per_request", [])[:6],
                flush=True,
            )
    summary = {
        key: {
            "overhead_pct": [round(100 * r["overhead"], 1) for r in rs],
            "loadavg_1min": [round(r["loadavg_1min"], 2) for r in rs],
            "overhead_pct_median": round(100 * statistics.median(r["overhead"] for r in rs), 1),
            "beyond_tail_ms_per_request": [
                round(1e3 * (r["server_cpu_s"] - r["compute_cpu_s"]) / r["ok"], 3) for r in rs
            ],
        }
        for key, rs in runs.items()
    }
    with open(args.out, "w") as f:
        record = {"command": CMD, "a": args.a, "b": args.b, "a_args": args.a_args,
                  "b_args": args.b_args, "summary": summary, "runs": runs}  # fmt: skip
        json.dump(record, f, indent=1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
