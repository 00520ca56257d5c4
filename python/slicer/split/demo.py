"""``slicer run`` without a model: EfficientNet-Lite0 split mid-network on real photos.

The 20 labelled ImageNet photos shipped with foolbox, each as a centre crop and its mirror
image (40 inputs), go through head → SLICER codec → tail; the report compares with the uncut
model (top-1 agreement, output error) and with the photos' labels.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import numpy as np

from . import zoo
from .cli import DEMO_CUT, DEMO_MODEL, print_run_summary
from .graph import Partitioner
from .runner import SplitModel, json_result
from .transport import CodecParams


def demo_inputs() -> list[tuple[np.ndarray, int]]:
    """(image tensor, label) for every photo, unflipped and mirrored."""
    out = []
    for rgb, label, _ in zoo.imagenet_photos():
        for flip in (False, True):
            out.append((zoo.preprocess_image(rgb, crop=0.875, flip=flip), label))
    return out


def run_demo(
    params: CodecParams | None,
    args: argparse.Namespace,
    *,
    part: Partitioner | None = None,
    cut=None,  # noqa: ANN001 - a Cut of ``part``
    source: str | None = None,
    artifacts: dict | None = None,
) -> int:
    from tqdm import tqdm

    part = part or Partitioner(zoo.model_path(DEMO_MODEL))
    cut = cut or part.find_cut(DEMO_CUT if args.split == "auto" else args.split)
    split = SplitModel(
        part, cut, providers=args.providers, threads=args.threads, **(artifacts or {})
    )
    samples = demo_inputs()
    agree, correct_full, correct_split = [], [], []
    results = []
    for image, label in tqdm(
        samples, desc="split inference", unit="img", file=sys.stderr, leave=False
    ):
        result = split.run({"image": image}, params)
        ref = result.reference["logits"].argmax()
        got = result.outputs["logits"].argmax()
        agree.append(ref == got)
        correct_full.append(ref == label)
        correct_split.append(got == label)
        results.append(result)
    last = results[-1]
    out = json_result(
        last,
        split.provider,
        {
            "model": DEMO_MODEL,
            "params": params.to_json() if params else None,
            "settings": source,
            "inputs": f"{len(samples)} ImageNet photos (foolbox, centre crop + mirror)",
        },
    )
    # Aggregate over all inputs (sizes vary slightly from image to image).
    out["encoded_bytes"] = int(statistics.mean(r.packet.encoded_bytes for r in results))
    out["bits_per_element"] = statistics.mean(r.bits_per_element for r in results)
    out["compression_ratio"] = out["raw_bytes"] / out["encoded_bytes"]
    out["latency_ms"] = {
        k: 1e3 * statistics.median(r.latency_s[k] for r in results) for k in last.latency_s
    }
    out["fidelity"] = {
        "max_abs_diff": max(r.fidelity["max_abs_diff"] for r in results),
        "rel_l2": statistics.mean(r.fidelity["rel_l2"] for r in results),
        "cosine": min(r.fidelity["cosine"] for r in results),
        "kl": statistics.mean(r.fidelity["kl"] for r in results),
        "top1_agreement": float(np.mean(agree)),
    }
    out["num_inputs"] = len(samples)
    out["summary"] = {
        "top-1 vs labels (uncut)": f"{100 * np.mean(correct_full):.1f}%",
        "top-1 vs labels (split)": f"{100 * np.mean(correct_split):.1f}%",
        "inputs": out["inputs"],
        "bits per input pixel": f"{8 * out['encoded_bytes'] / (224 * 224):.3f}",
    }
    if args.json:
        json.dump(out, sys.stdout, indent=1)
        print()
    else:
        print_run_summary(out)
    return 0
