"""Side tensors of the shipped models' fidelity cuts, raw and as docs/side.md strings.

    python bench/side_tensors.py census            # every cut's side tensors -> JSON + table
    python bench/side_tensors.py levels            # deflate level 1 / 6 / 9: bytes and time
    python bench/side_tensors.py plot "one table=a.json,b.json" "class tables=c.json"
                                                   # cosine vs b/el (fidelity_dense --json)

``census`` runs the head of MiniLM after layer 3 on the 200 sentences bench/fidelity_dense.py
scores, EfficientNet-Lite0 after blocks 4 and 10 on one photo, and SmolLM2 after layers 5 / 15
/ 25 on one 512-token chunk, and reports, per cut, each side tensor (what the transport does
not code) with its raw bytes, its side-string bytes (``slicer.split.side.encode_side``) and
zlib level 9 with its header (``zlib.compress``: the estimate of RESULTS §9.5), per input and
in bits per coded element.
"""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "fidelity"))

from slicer.split.side import decode_side, encode_side  # noqa: E402
from slicer.split.transport import coded_names  # noqa: E402


def side_stats(heads: list[dict[str, np.ndarray]]) -> dict:
    """Mean bytes per input of the side tensors (raw / side string / zlib 9) and elements."""
    raw = coded = packed = elements = 0
    shapes: dict[str, set[tuple[int, ...]]] = {}
    dtypes: dict[str, str] = {}
    for h in heads:
        names = coded_names(
            {n: v.shape for n, v in h.items()}, {n: str(v.dtype) for n, v in h.items()}
        )
        elements += sum(h[n].size for n in names)
        for name, v in h.items():
            if name in names:
                continue
            data = encode_side(v)
            back = decode_side(data)
            assert back.dtype == v.dtype and back.tobytes() == v.tobytes()
            shapes.setdefault(name, set()).add(v.shape)
            dtypes[name] = str(v.dtype)
            raw += v.nbytes
            coded += len(data)
            packed += len(zlib.compress(v.tobytes(), 9))
    n = len(heads)
    tensors = {}  # dtype and shape, an axis that varies between inputs shown as "T"
    for name, seen in shapes.items():
        axes = map(set, zip(*seen, strict=True))  # one name keeps its ndim
        dims = [str(d.pop()) if len(d) == 1 else "T" for d in axes]
        tensors[name] = f"{dtypes[name]} ({', '.join(dims)})"
    return {
        "inputs": n,
        "side_tensors": tensors,
        "coded_elements_per_input": elements / n,
        "raw_bytes_per_input": raw / n,
        "side_bytes_per_input": coded / n,
        "zlib9_bytes_per_input": packed / n,
        "raw_bpe": 8 * raw / elements,
        "side_bpe": 8 * coded / elements,
        "zlib9_bpe": 8 * packed / elements,
    }


def census(out: Path) -> None:
    import effnet as fe
    import fidelity_dense as fd
    import minilm as fm
    from tqdm import tqdm

    from slicer.split import Partitioner, SplitModel, zoo

    results = {}
    part = Partitioner(zoo.model_path("minilm"))
    tok = zoo.minilm_tokenizer()
    split = SplitModel(part, fm.CUTS[1], providers="cpu", threads=2)
    heads = []
    for text in tqdm(zoo.prose_sentences(fd.MINILM_CALIB_STOP)[: fm.SENTENCES], desc="minilm"):
        enc = tok(text, return_tensors="np", truncation=True, max_length=128)
        heads.append(
            split.run_head({k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")})
        )
    results[f"minilm {fm.CUTS[1]}"] = side_stats(heads)

    part = Partitioner(zoo.model_path("efficientnet-lite0"))
    x = zoo.preprocess_image(zoo.imagenet_photos()[0][0], crop=0.875, offset=(0.5, 0.5))
    for name in fe.CUTS[:2]:
        head = SplitModel(part, name, providers="cpu", threads=2).run_head({"image": x})
        results[f"efficientnet-lite0 {name}"] = side_stats([head])

    part = Partitioner(zoo.model_path("smollm2"))
    ids = zoo.smollm2_tokenizer()(zoo.prose_text())["input_ids"]
    chunk = {"input_ids": np.array(ids[:512], dtype=np.int64)[None]}
    for name in fd.SMOLLM2_CUTS:
        head = SplitModel(part, name, providers="cpu", threads=2).run_head(chunk)
        results[f"smollm2 {name}"] = side_stats([head])

    out.write_text(json.dumps(results, indent=1))
    print(f"{'cut':<58} raw B  side B  zlib9 B   b/el raw / side / zlib9     side tensors")
    for cut, r in results.items():
        kinds = ", ".join(f"{k}: {v}" for k, v in r["side_tensors"].items()) or "none"
        print(
            f"{cut:<58} {r['raw_bytes_per_input']:5.1f} {r['side_bytes_per_input']:7.1f} "
            f"{r['zlib9_bytes_per_input']:8.1f}   {r['raw_bpe']:.4f} / {r['side_bpe']:.4f} / "
            f"{r['zlib9_bpe']:.4f}   {kinds}"
        )


def levels() -> None:
    """Raw-deflate bytes and encode time (best of 5) of typical side tensors per zlib level."""
    import time

    rng = np.random.default_rng(0)
    pad = np.r_[np.ones(30), np.zeros(6)].astype(np.int64)[None]
    cases = {
        "mask (1, 36) int64": np.ones((1, 36), np.int64),
        "additive (1, 1, 1, 36) float32": np.zeros((1, 1, 1, 36), np.float32),
        "padded mask (1, 36) int64": pad,
        "mask (1, 512) int64": np.ones((1, 512), np.int64),
        "token ids (1, 4096) int64 < 50000": rng.integers(0, 50000, (1, 4096)),
        "N(0,1) float32, 256 Ki": rng.standard_normal(1 << 18).astype(np.float32),
    }
    print(f"{'tensor':<36} {'raw B':>8}" + "".join(f"   level {k}: B / ms" for k in (1, 6, 9)))
    for name, a in cases.items():
        raw, cells = a.tobytes(), []
        for level in (1, 6, 9):
            best = float("inf")
            for _ in range(5):
                start = time.perf_counter()
                c = zlib.compressobj(level, zlib.DEFLATED, -15)
                out = c.compress(raw) + c.flush()
                best = min(best, time.perf_counter() - start)
            cells.append(f"{len(out):>9} / {1e3 * best:7.3f}")
        print(f"{name:<36} {len(raw):>8}   " + "   ".join(cells))


def plot(series: list[str], out: Path) -> None:
    """``series``: "LABEL=a.json,b.json" (fidelity_dense --json files of one codec setting);
    one curve per series and basis (plain / KLT), the first series also with raw side tensors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.6))
    for k, item in enumerate(series):
        label, _, files = item.rpartition("=")
        paths = files.split(",")
        label = label or Path(paths[0]).stem
        rows = [r for path in paths for r in json.loads(Path(path).read_text())["rows"]]
        for klt, color in ((False, "tab:blue"), (True, "tab:red")):
            sel = sorted(
                (r for r in rows if bool(r["params"].get("transform")) == klt),
                key=lambda r: r["bits_per_element"],
            )
            if not sel:
                continue
            name = f"{'KLT' if klt else 'plain'}, {label}"
            cos = [r["cosine"] for r in sel]
            marker, alpha = ("o-", 1.0) if k == 0 else ("s-", 0.55)
            ax.plot([r["bits_per_element"] for r in sel], cos, marker, color=color, alpha=alpha,
                    label=f"{name}, side tensors coded")  # fmt: skip
            if k == 0:
                ax.plot([r["bits_per_element_side_raw"] for r in sel], cos, "o--", color=color,
                        mfc="none", alpha=0.4, label=f"{name}, side tensors raw")  # fmt: skip
    ax.axhline(0.99, color="gray", lw=0.8)
    ax.axvline(2.0, color="gray", lw=0.8)
    ax.set_xlabel("bits per element, everything counted")
    ax.set_ylabel("embedding cosine to the uncut model")
    ax.set_title("MiniLM-L6 after layer 3, 200 sentences: target cosine 0.99 at 2.0 b/el")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["census", "levels", "plot"])
    p.add_argument("inputs", nargs="*", help="plot: LABEL=file.json[,file.json] per series")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    if a.what == "census":
        census(Path(a.out or HERE / "results" / "side_tensors.json"))
    elif a.what == "levels":
        levels()
    else:
        plot(a.inputs, Path(a.out or HERE / "plots" / "side_minilm.png"))
