"""SLICER: a training-free intermediate-feature codec for split inference.

Encode activations (float32 / float16 / bfloat16, NumPy, PyTorch, any DLPack array) into
compact SLICER streams (bitstream format 1, docs/format.md) and decode them back::

    import numpy as np, slicer
    x = np.random.default_rng(0).standard_normal((4, 576)).astype(np.float32)
    stream = slicer.encode(x, sparsity=0.9, bits=8, groups="rows")
    y = slicer.decode(stream)
    print(slicer.inspect(stream))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._api import decode, encode, encode_batch, size_bound
from ._batch import decode_batch
from ._context import Context, default_context
from ._errors import FormatError
from ._frames import FrameDecoder, FrameEncoder
from ._inspect import BlockInfo, ByteAccount, StreamInfo, inspect

if TYPE_CHECKING:
    from .codec import Slicer as Codec

__version__ = "0.3.0"
#: The bitstream format this package writes (and the highest it reads).
FORMAT_VERSION = 1

__all__ = [
    "FORMAT_VERSION",
    "BlockInfo",
    "ByteAccount",
    "Codec",
    "Context",
    "FormatError",
    "FrameDecoder",
    "FrameEncoder",
    "StreamInfo",
    "__version__",
    "decode",
    "decode_batch",
    "default_context",
    "encode",
    "encode_batch",
    "inspect",
    "size_bound",
]


def __getattr__(name: str) -> Any:
    # slicer.Codec is imported on first use: numcodecs (its base class) is slow to import.
    if name == "Codec":
        from .codec import Slicer

        return Slicer
    raise AttributeError(f"module 'slicer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "Codec"})
