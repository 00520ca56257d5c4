"""Autoregressive split decoding of decoder-only LLMs (paper Eqs. 4–6).

The device (:class:`EdgeSession`) runs the embedding and layers 0..ℓ-1 with its own KV cache,
the server (:class:`ServerSession`) runs layers ℓ..L-1 and the LM head with its own; one coded
hidden row per token crosses the link (:mod:`slicer.llm.messages`). :mod:`slicer.llm.planner`
chooses the cut ℓ and the handover step w on a profile measured by :mod:`slicer.llm.profile`;
:mod:`slicer.llm.export` makes and caches the ONNX graphs of the shipped models (``smollm2``,
``gemma3``).
"""

from __future__ import annotations

from .export import SOURCES, graph_path, model_info, tokenizer
from .messages import MessageError, ProtocolError, make_codec
from .planner import ARProfile, InfeasibleError, Plan, plan
from .sessions import EdgeSession, ServerSession, reference_greedy, run_split

__all__ = [
    "SOURCES",
    "ARProfile",
    "EdgeSession",
    "InfeasibleError",
    "MessageError",
    "Plan",
    "ProtocolError",
    "ServerSession",
    "graph_path",
    "make_codec",
    "model_info",
    "plan",
    "reference_greedy",
    "run_split",
    "tokenizer",
]
