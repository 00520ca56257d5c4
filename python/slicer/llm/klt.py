"""Decode rows in a calibrated KLT basis: fit, cache and bind a :class:`CutTransform` per cut.

The hidden rows that cross a cut are strongly correlated across channels, so a uniform
quantizer with an entropy coder spends fewer bits for the same squared error on the rows'
principal-component coefficients (bench/RESULTS.md §9.6, §13.11). Both sides hold the transform,
like the weights: the edge codes ``forward(rows)``, the server decodes and applies ``inverse``.

A transform is fitted per (model, cut) through the exported head graph on calibration prose
that no benchmark scores (:class:`Recipe`: tokens 40960 … 49151 of the shipped prose, the
text the scored runs take their first 10,240 tokens from), and cached beside the graphs as
``klt-{cut}-{recipe key}.npz`` under the model's fingerprinted folder, so a second run loads it
in milliseconds. Messages coded in a transform basis carry the transform flag of the codec field
and fold the transform's 32-bit tag into the model field (:mod:`slicer.llm.messages`): a
server holding another transform, or none, refuses them.

The fingerprint covers the float32 mean and basis bit for bit, and a fit's float64 sums depend
on the BLAS that computed them: two machines fitting "auto" on their own may hold transforms
that differ in the last bits and refuse each other. Fit once and give both sides the file
(``CutTransform.save`` / ``--transform FILE``), as with the weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..split.transform import CutTransform
from . import export

__all__ = ["DEFAULT_RECIPE", "CutTransform", "Recipe", "fit", "load", "resolve", "transform_tag"]


@dataclass(frozen=True)
class Recipe:
    """How a transform is calibrated: ``tokens`` tokens of the shipped prose from ``start``,
    run through the head in chunks of ``chunk`` tokens (each chunk from position 0, so its
    first row is an attention-sink row like every prefill's), feature vectors whose norm is
    above ``outlier_ratio`` × their chunk's median left out of the fit (None: all kept)."""

    start: int = 40960
    tokens: int = 8192
    chunk: int = 512
    outlier_ratio: float | None = None

    def __post_init__(self) -> None:
        for name in ("start", "tokens", "chunk"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"recipe {name} must be an int, got {type(value).__name__}")
        if self.start < 0 or self.chunk < 2 or self.tokens < self.chunk:
            raise ValueError(f"recipe needs start >= 0, chunk >= 2 and tokens >= chunk, got {self}")
        ratio = self.outlier_ratio
        if ratio is not None and (
            isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio >= 1
        ):
            raise ValueError(f"recipe outlier_ratio must be None or a number >= 1, got {ratio!r}")

    def key(self) -> str:
        """12 hex digits naming the recipe (part of the cache file name)."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


#: The shipped recipe: every row fitted, attention-sink rows included. Leaving the sink rows
#: out (``outlier_ratio=8``) gave the same KL and 0.5-4 bytes more per frame (bench/RESULTS.md
#: §13.11): with the sinks in the fit their energy sits in the first components, while a basis
#: fitted without them spreads a prefill's sink row over many coefficients, and those large
#: codes distort the frame context's table, which is built from the prefill rows.
DEFAULT_RECIPE = Recipe()


def transform_tag(transform: CutTransform) -> int:
    """The 32-bit tag a transform puts into a message's model field: the first 8 hex digits of
    its fingerprint's SHA-256."""
    digest = transform.fingerprint().split(":", 1)[-1]
    return int(digest[:8], 16)


def cache_path(model: str, cut: int, recipe: Recipe = DEFAULT_RECIPE) -> Path:
    info = export.model_info(model)
    export.check_cut(info, cut)
    return export.model_dir(model) / f"klt-{cut}-{recipe.key()}.npz"


def _calibration_ids(model: str, recipe: Recipe) -> np.ndarray:
    from ..split.zoo import prose_text

    ids = export.tokenizer(model)(prose_text())["input_ids"]
    if len(ids) < recipe.start + recipe.tokens:
        raise ValueError(
            f"the prose has {len(ids)} {model} tokens, fewer than the recipe's "
            f"{recipe.start} + {recipe.tokens}"
        )
    return np.asarray(ids[recipe.start : recipe.start + recipe.tokens], dtype=np.int64)


def fit(
    model: str,
    cut: int,
    recipe: Recipe = DEFAULT_RECIPE,
    *,
    threads: int = 1,
    progress: bool = False,
) -> CutTransform:
    """Fit the KLT of the rows after layer ``cut`` on the recipe's calibration text, through
    the exported head graph (what the edge runs). Not cached: see :func:`load`."""
    from .sessions import _Stack

    info = export.model_info(model)
    export.check_cut(info, cut)
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a Recipe, got {type(recipe).__name__}")
    ids = _calibration_ids(model, recipe)
    head = _Stack(export.graph_path(model, "head", cut), info, range(cut), threads)
    starts = range(0, ids.size - recipe.chunk + 1, recipe.chunk)

    def rows():  # noqa: ANN202
        it: Any = starts
        if progress:
            from tqdm import tqdm

            it = tqdm(starts, desc=f"KLT fit {model} cut {cut}", unit="chunk", leave=False)
        for s in it:
            head.reset()
            yield head.run(ids[None, s : s + recipe.chunk], 0)[0]

    return CutTransform.fit(rows(), axis=-1, outlier_ratio=recipe.outlier_ratio)


def load(
    model: str,
    cut: int,
    recipe: Recipe = DEFAULT_RECIPE,
    *,
    refresh: bool = False,
    threads: int = 1,
    progress: bool = False,
) -> CutTransform:
    """The cached transform of (model, cut, recipe), fitted and stored first when missing (or
    with ``refresh``). The cache folder is keyed by the model fingerprint, the file by the cut
    and the recipe."""
    path = cache_path(model, cut, recipe)
    if path.exists() and not refresh:
        try:
            return _checked(CutTransform.load(path), export.model_info(model).hidden, path)
        except ValueError:
            pass  # a damaged cache entry: fit again
    transform = fit(model, cut, recipe, threads=threads, progress=progress)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    transform.save(tmp)
    os.replace(tmp, path)
    return transform


def _checked(transform: CutTransform, hidden: int, what: Any) -> CutTransform:
    if transform.channels != hidden:
        raise ValueError(
            f"transform {what} has {transform.channels} channels, the model's rows {hidden}"
        )
    if transform.axis not in (-1, 1):
        raise ValueError(
            f"transform {what} acts on axis {transform.axis}; row transforms act on the last axis"
        )
    return transform


def resolve(spec: Any, model: str, cut: int, *, progress: bool = False) -> CutTransform | None:
    """A session's ``transform=`` argument: None (rows coded as they are), ``"auto"`` (the
    cached default transform of this model and cut, fitted on first use), a
    :class:`CutTransform` or the path of a saved one. Checked against the model's width."""
    if spec is None:
        return None
    hidden = export.model_info(model).hidden
    if isinstance(spec, CutTransform):
        return _checked(spec, hidden, "given")
    if isinstance(spec, str) and spec == "auto":
        return load(model, cut, progress=progress)
    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        if not path.is_file():
            raise ValueError(f"transform must be None, 'auto' or a transform file: no file {spec}")
        return _checked(CutTransform.load(path), hidden, str(path))
    raise TypeError(
        f"transform must be None, 'auto', a CutTransform or a path, got {type(spec).__name__}"
    )
