"""Markdown tables of the serve benchmarks (bench/serve_results/*.json → stdout).

python bench/serve_report.py [bench/serve_results]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _f(x: float | None, fmt: str = ".2f") -> str:
    return "—" if x is None else format(x, fmt)


def loadtest_table(report: dict) -> str:
    rows = [
        "| set-up | N | requests | ok | lost | dup | mismatched | req/s | p50 ms | p99 ms "
        "| server CPU ms/req | overhead | mean batch | reply batch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["runs"]:
        lat = r["latency_ms"]
        ovh = r.get("overhead")
        rows.append(
            f"| {r['setup']} | {r['clients']} | {r['requests']} | {r['ok']} | {r['lost']} "
            f"| {r['duplicated']} | {r['mismatched']} | {r['throughput_rps']:.1f} "
            f"| {_f(lat['p50'], '.1f')} | {_f(lat['p99'], '.1f')} "
            f"| {_f(r['server_cpu_ms_per_request'], '.3f')} "
            f"| {_f(None if ovh is None else 100 * ovh, '.1f')} % | {_f(r['mean_batch'], '.1f')} "
            f"| {_f(r.get('reply_batch_mean'), '.1f')} |"
        )
    return "\n".join(rows)


def setups_table(report: dict) -> str:
    rows = [
        "| set-up | bytes per request | fidelity vs the uncut model |",
        "|---|---:|---|",
    ]
    for name, info in report["setups"].items():
        fid = info["fidelity_vs_uncut"]
        parts = [f"cosine min {fid['cosine_min']:.4f} / mean {fid['cosine_mean']:.4f}"]
        if "top1_agreement" in fid:
            parts.append(f"top-1 agreement {100 * fid['top1_agreement']:.1f} %")
        rows.append(f"| {name} | {info['request_bytes_mean']:.0f} | {', '.join(parts)} |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else Path(__file__).parent / "serve_results")
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        print(f"\n### {path.name}\n")
        if "runs" in data:
            print(
                f"{data['model']}, cut #{data['cut']['index']} `{data['cut']['name']}`, codec "
                f"{data['params']}, config {data['config']}\n"
            )
            print(setups_table(data) + "\n")
            print(loadtest_table(data) + "\n")
            print("summary: " + json.dumps(data["summary"]))
            for name, info in data["setups"].items():
                extra = {k: info[k] for k in ("engine", "replicas", "cold_start_s") if k in info}
                if "idle_rss_bytes" in info:
                    extra["idle_rss_gib"] = round(info["idle_rss_bytes"] / 2**30, 2)
                if extra.get("engine") == "ray":
                    print(f"{name}: {json.dumps(extra)}")
        else:
            print("```json\n" + json.dumps(data, indent=1) + "\n```")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
