"""EfficientNet-Lite0 fidelity on the shipped ImageNet photos (20 photos x 5 crops x 2 flips).

    python bench/fidelity/effnet.py            # ~3-5 min on 2 cores

Per cut and setting: top-1 agreement with the uncut model, top-1 against the photos' labels,
KL(uncut || split), bits per element of the IF and bits per input pixel (paper Table 1).
"""

from __future__ import annotations

import numpy as np
from common import (
    SPARSITIES,
    ablation_settings,
    environment,
    parser,
    peer_settings,
    plot,
    slicer_setting,
    sweep,
    write_json,
)

from slicer.split import Partitioner, SplitModel, zoo
from slicer.split.fidelity import log_softmax

CUTS = (
    "/_blocks.4/Add_output_0",  # after 5 of 16 blocks: 40x28x28, dense (residual sum)
    "/_blocks.9/Add_output_0",  # mid-network: 112x14x14, dense (residual sum)
    "/_blocks.11/_swish/Clip_output_0",  # mid-network after ReLU6: 672x14x14, ~half zeros
)
CROPS = (
    (0.875, (0.5, 0.5)),
    (1.0, (0.5, 0.5)),
    (0.8, (0.2, 0.2)),
    (0.8, (0.8, 0.8)),
    (0.7, (0.5, 0.5)),
)
PIXELS = 224 * 224


def main() -> None:
    args = parser(__doc__).parse_args()
    part = Partitioner(zoo.model_path("efficientnet-lite0"))
    samples = [
        (zoo.preprocess_image(rgb, crop=c, offset=o, flip=f), label)
        for rgb, label, _ in zoo.imagenet_photos()
        for c, o in CROPS
        for f in (False, True)
    ]
    labels = np.array([label for _, label in samples])
    settings = (
        [slicer_setting(s) for s in SPARSITIES]
        + [slicer_setting(0.5, bits=4)]
        + ablation_settings(0.9)
        + ablation_settings(0.9, bits=4, delta=0.1, exact=False)
        + peer_settings()
    )
    results, uncut = {}, {}
    for name in CUTS:
        split = SplitModel(part, name, providers="cpu", threads=args.threads)
        ref = [split.run_full({"image": x})["logits"][0] for x, _ in samples]
        heads = [split.run_head({"image": x}) for x, _ in samples]
        ref_top1 = np.array([r.argmax() for r in ref])
        uncut = {"top1_vs_labels": float(np.mean(ref_top1 == labels)), "inputs": len(samples)}
        zeros = float(np.mean([np.mean(next(iter(h.values())) == 0) for h in heads]))

        def score(
            i: int, outputs: dict, ref: list = ref, ref_top1: np.ndarray = ref_top1
        ) -> dict[str, float]:
            logits = outputs["logits"][0]
            lp, lq = log_softmax(ref[i][None]), log_softmax(logits[None])
            return {
                "top1_agreement": float(logits.argmax() == ref_top1[i]),
                "top1_vs_labels": float(logits.argmax() == labels[i]),
                "kl": float(np.sum(np.exp(lp) * (lp - lq))),
            }

        rows = sweep(split, heads, settings, score, desc=name.split("/")[1])
        for row in rows:
            row["bits_per_pixel"] = 8 * row["bytes_per_input"] / PIXELS
            row["top1_change_pp"] = 100 * (row["top1_vs_labels"] - uncut["top1_vs_labels"])
        results[name] = rows
        print(
            f"{name}: zero fraction {zeros:.3f}; uncut top-1 vs labels "
            f"{uncut['top1_vs_labels']:.3f}"
        )
        for row in rows:
            print(
                f"  {row['setting']:<44} {row['bits_per_element']:6.2f} b/el "
                f"{row['bits_per_pixel']:6.3f} bpp  agree {row['top1_agreement']:.3f}  "
                f"labels {row['top1_vs_labels']:.3f}  KL {row['kl']:.4f}"
            )
        results[name + "#zero_fraction"] = zeros
    path = write_json(
        "fidelity_efficientnet_lite0",
        {
            "model": "efficientnet-lite0",
            "uncut": uncut,
            "cuts": list(CUTS),
            "environment": environment(),
            "results": {k: v for k, v in results.items() if not k.endswith("#zero_fraction")},
            "zero_fraction": {
                k[:-14]: v for k, v in results.items() if k.endswith("#zero_fraction")
            },
        },
        args.out,
    )
    png = plot(
        "fidelity_efficientnet_lite0",
        f"EfficientNet-Lite0, {len(samples)} ImageNet photo crops",
        {k: v for k, v in results.items() if not k.endswith("#zero_fraction")},
        "top1_agreement",
        "top-1 agreement with the uncut model",
    )
    print(f"wrote {path} and {png}")


if __name__ == "__main__":
    main()
