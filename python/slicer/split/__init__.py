"""Split inference on ONNX Runtime: cut a model, profile it, plan the split, measure fidelity.

Python API::

    from slicer.split import Partitioner, SplitModel, CodecParams

    part = Partitioner("model.onnx")          # path or ModelProto; external data stays on disk
    for cut in part.cuts():                    # topological order; cut.single / cut.simple
        print(cut.index, cut.name, [t.shape for t in cut.tensors], cut.head_param_bytes)
    head, tail = part.extract("/layers.11/Add_1_output_0")    # ONNX ModelProtos (name or index)

    split = SplitModel(part, 42, providers="auto")             # head + tail ORT sessions
    result = split.run(inputs, CodecParams(sparsity=0.9))      # head -> codec -> tail
    result.fidelity, result.packet.encoded_bytes, result.latency_s, split.provider

    profile = profile_model(part, inputs)                      # JSON-able dict
    choice = plan(profile, Budget(64e6, 0.030, Link(20e6)))    # Eq. 1-3, SLICER-Search

    samples = load_samples("photos", part, 200)                # or a list of input dicts
    settings = calibrate(part, "agreement:0.99", samples, split="all")   # per-cut settings
    save_settings(settings, "s.json"); plan(profile, budget, settings=load_settings("s.json"))
    # a cut's KLT / decoder-side estimator: calibrate(..., transform=True, estimator=True)
    entry = load_settings("s.json")["cuts"][0]
    split = SplitModel(part, entry["name"], transforms=transforms_for_entry(entry),
                       estimators=estimators_for_entry(entry))     # settings.*_for_entry

Shipped real models (exported to ONNX on first use into ``$SLICER_CACHE``):
``slicer.split.zoo.model_path("efficientnet-lite0" | "minilm" | "smollm2")``.
"""

from .calibrate import calibrate
from .datasets import load_samples
from .graph import Cut, Partitioner, TensorInfo, load_model
from .link import Link
from .planner import Budget, Plan, plan
from .profile import load_profile, profile_model, save_profile
from .providers import provider_loads, resolve_providers
from .runner import SplitModel, SplitResult, random_inputs
from .settings import Target, load_settings, parse_target, save_settings
from .transport import CodecParams

__all__ = [
    "Budget",
    "CodecParams",
    "Cut",
    "Link",
    "Partitioner",
    "Plan",
    "SplitModel",
    "SplitResult",
    "Target",
    "TensorInfo",
    "calibrate",
    "load_model",
    "load_profile",
    "load_samples",
    "load_settings",
    "parse_target",
    "plan",
    "profile_model",
    "provider_loads",
    "random_inputs",
    "resolve_providers",
    "save_profile",
    "save_settings",
]
