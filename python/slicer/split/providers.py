"""ONNX Runtime sessions with execution providers that really load.

``onnxruntime-gpu`` lists ``CUDAExecutionProvider`` even on a machine without a usable GPU and
then prints a wall of load errors when a session asks for it. We probe once, quietly, with a
one-node model and only hand CUDA to real sessions when the probe ran on it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import onnx
from onnx import TensorProto, helper

_QUIET = 3  # ORT log severity for real sessions: errors only (the probe uses 4, fatal only)


def _probe_model() -> bytes:
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


@functools.cache
def provider_loads(provider: str) -> bool:
    """True when a session created with ``provider`` actually runs on it."""
    import onnxruntime as ort

    if provider == "CPUExecutionProvider":
        return True
    if provider not in ort.get_available_providers():
        return False
    ort.set_default_logger_severity(4)
    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 4
        sess = ort.InferenceSession(
            _probe_model(), sess_options=opts, providers=[provider, "CPUExecutionProvider"]
        )
        return sess.get_providers()[0] == provider
    except Exception:  # noqa: BLE001 - any load failure means "not usable"
        return False
    finally:
        ort.set_default_logger_severity(_QUIET)


def resolve_providers(requested: Sequence[str] | str | None = None) -> list[str]:
    """Execution providers to use, most preferred first, always ending with CPU.

    ``None`` or ``"auto"``: CUDA when it loads, else CPU. Short names ``cuda`` / ``cpu`` are
    accepted. Asking explicitly for a provider that cannot load is an error, not a fallback.
    """
    import onnxruntime as ort

    aliases = {
        "cuda": "CUDAExecutionProvider",
        "cpu": "CPUExecutionProvider",
        "tensorrt": "TensorrtExecutionProvider",
    }
    if requested is None or requested == "auto" or requested == ["auto"]:
        chosen = ["CUDAExecutionProvider"] if provider_loads("CUDAExecutionProvider") else []
        return chosen + ["CPUExecutionProvider"]
    if isinstance(requested, str):
        requested = [p.strip() for p in requested.split(",") if p.strip()]
    out: list[str] = []
    for name in requested:
        full = aliases.get(name.lower(), name)
        if full not in ort.get_available_providers():
            raise ValueError(
                f"execution provider {name!r} is not in this onnxruntime build "
                f"(available: {', '.join(ort.get_available_providers())})"
            )
        if not provider_loads(full):
            raise ValueError(f"execution provider {full} is installed but cannot load here")
        if full not in out:
            out.append(full)
    if "CPUExecutionProvider" not in out:
        out.append("CPUExecutionProvider")
    return out


def make_session(
    model: onnx.ModelProto | bytes | str,
    providers: Sequence[str],
    threads: int = 0,
    external_dir: str | None = None,
):  # noqa: ANN201
    """An InferenceSession with quiet logging; ``threads`` = 0 lets ORT choose.

    ``external_dir``: folder of the external weight files the model proto refers to.
    """
    import onnxruntime as ort

    from .graph import session_bytes_or_path

    opts = ort.SessionOptions()
    opts.log_severity_level = _QUIET
    if external_dir:
        opts.add_session_config_entry(
            "session.model_external_initializers_file_folder_path", external_dir
        )
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    source = session_bytes_or_path(model) if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(source, sess_options=opts, providers=list(providers))
