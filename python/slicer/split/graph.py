"""Cut points of an ONNX graph and extraction of the head / tail sub-models.

A cut after compute node ``i`` (in the graph's topological order) is the set of tensors
produced at or before ``i`` (graph inputs count as produced before node 0) and consumed after
``i`` or returned as graph outputs. Initializers, ``Constant`` nodes and every node computed
from constants only ("constant-derived") belong to neither side: whichever side needs them
recomputes them, so they never cross the link.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

# ORT refuses protobufs over 2 GiB in memory; bigger pieces go through a temp file with
# external data.
_PROTO_LIMIT = 1_800_000_000


@dataclass(frozen=True)
class TensorInfo:
    """One tensor that crosses a cut: declared shape (ints or symbolic names) and dtype."""

    name: str
    shape: tuple[int | str, ...] | None
    dtype: str

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "shape": list(self.shape) if self.shape is not None else None,
            "dtype": self.dtype,
        }


@dataclass(frozen=True)
class Cut:
    """A legal split point: the head runs nodes ``0 … node_index`` and sends ``tensors``."""

    index: int
    node_index: int
    name: str
    tensors: tuple[TensorInfo, ...]
    head_param_bytes: int

    @property
    def single(self) -> bool:
        """True when exactly one tensor crosses (the usual layer-boundary cut)."""
        return len(self.tensors) == 1

    @property
    def simple(self) -> bool:
        """One bulky float tensor plus, at most, side tensors that cost next to nothing.

        Side tensors are integer / bool (token ids, masks, shape scalars) or float tensors
        with fewer than 64 elements once symbolic dimensions are set to 1 (an additive mask
        ``[1, 1, 1, T]``). These are the cuts a user means by "after layer 11".
        """
        return len(self._bulky()) == 1

    @property
    def feature(self) -> str | None:
        """Name of the one bulky tensor of a simple cut (None for other cuts)."""
        bulky = self._bulky()
        return bulky[0].name if len(bulky) == 1 else None

    def _bulky(self) -> list[TensorInfo]:
        return [
            t
            for t in self.tensors
            if t.dtype in ("float32", "float16", "bfloat16", "float64")
            and (t.shape is None or _unit_count(t.shape) >= 64)
        ]

    def to_json(self) -> dict:
        return {
            "index": self.index,
            "name": self.name,
            "node_index": self.node_index,
            "single_tensor": self.single,
            "simple": self.simple,
            "tensors": [t.to_json() for t in self.tensors],
            "head_param_bytes": self.head_param_bytes,
        }


def _unit_count(shape: tuple[int | str, ...]) -> int:
    """Element count with every symbolic dimension taken as 1."""
    return int(np.prod([d if isinstance(d, int) and d > 0 else 1 for d in shape]))


def _dtype_name(elem_type: int) -> str:
    try:
        return str(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)))
    except (KeyError, TypeError, ValueError):
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def _subgraph_inputs(node: onnx.NodeProto) -> list[str]:
    """Outer-scope names a control-flow node's subgraphs read (implicit inputs)."""
    names: list[str] = []
    for attr in node.attribute:
        graphs = list(attr.g and [attr.g] or []) + list(attr.graphs)
        for g in graphs:
            defined = {i.name for i in g.input} | {i.name for i in g.initializer}
            for inner in g.node:
                for name in list(inner.input) + _subgraph_inputs(inner):
                    if name and name not in defined:
                        names.append(name)
                defined.update(inner.output)
    return names


def _tensor_nbytes(t: onnx.TensorProto) -> int:
    count = int(np.prod(t.dims)) if len(t.dims) else 1
    try:
        item = np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
    except (KeyError, TypeError, ValueError):
        item = 1
    return count * item


@dataclass
class _GraphIndex:
    """Producer / consumer bookkeeping shared by cut enumeration and extraction."""

    model: onnx.ModelProto
    node_inputs: list[list[str]] = field(default_factory=list)
    producer: dict[str, int] = field(default_factory=dict)
    constant_nodes: set[int] = field(default_factory=set)
    constant_tensors: set[str] = field(default_factory=set)
    initializers: dict[str, onnx.TensorProto] = field(default_factory=dict)
    graph_inputs: list[str] = field(default_factory=list)
    graph_outputs: list[str] = field(default_factory=list)
    value_types: dict[str, onnx.TypeProto] = field(default_factory=dict)

    @classmethod
    def build(cls, model: onnx.ModelProto) -> _GraphIndex:
        g = model.graph
        idx = cls(model)
        idx.initializers = {t.name: t for t in g.initializer}
        idx.graph_inputs = [i.name for i in g.input if i.name not in idx.initializers]
        idx.graph_outputs = [o.name for o in g.output]
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            idx.value_types[vi.name] = vi.type
        idx.constant_tensors = set(idx.initializers)
        for i, node in enumerate(g.node):
            inputs = [n for n in list(node.input) + _subgraph_inputs(node) if n]
            idx.node_inputs.append(inputs)
            for out in node.output:
                if out:
                    idx.producer[out] = i
            # A node reading only constants (or nothing, like Constant) is constant-derived:
            # its value never depends on the model inputs.
            if all(n in idx.constant_tensors for n in inputs) and node.op_type not in (
                "RandomNormal",
                "RandomUniform",
                "Multinomial",
                "RandomNormalLike",
                "RandomUniformLike",
                "Bernoulli",
            ):
                idx.constant_nodes.add(i)
                idx.constant_tensors.update(o for o in node.output if o)
        return idx

    def tensor_info(self, name: str) -> TensorInfo:
        tp = self.value_types.get(name)
        if tp is None or not tp.HasField("tensor_type"):
            return TensorInfo(name, None, "unknown")
        tt = tp.tensor_type
        shape = None
        if tt.HasField("shape"):
            shape = tuple(
                d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in tt.shape.dim
            )
        return TensorInfo(name, shape, _dtype_name(tt.elem_type))


def _has_external_data(proto: onnx.ModelProto) -> bool:
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)


def load_model(model: str | os.PathLike | onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    """Load an ONNX model and annotate tensor shapes and dtypes.

    Returns the proto and, when its weights live in external data files, the folder that
    holds them: the weights are then left on disk and every head / tail session reads them
    from there (extracting a cut copies no weights).
    """
    external_dir = None
    if isinstance(model, onnx.ModelProto):
        proto = model
    else:
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # protobuf raises several unrelated types
            raise ValueError(f"{path} is not a readable ONNX model: {exc}") from exc
        if _has_external_data(proto):
            external_dir = str(path.resolve().parent)
    if not len(proto.graph.node):
        raise ValueError("the ONNX graph has no nodes")
    known = {vi.name for vi in proto.graph.value_info}
    produced = {o for n in proto.graph.node for o in n.output if o}
    if not produced <= known | {o.name for o in proto.graph.output}:
        try:
            if proto.ByteSize() < _PROTO_LIMIT:
                proto = onnx.shape_inference.infer_shapes(proto)
        except Exception:  # noqa: BLE001 - shapes are optional; profiling measures them
            pass
    return proto, external_dir


class Partitioner:
    """Cut points of one model and head / tail extraction.

    >>> part = Partitioner("model.onnx")
    >>> cut = part.cuts()[10]
    >>> head, tail = part.extract(cut)
    """

    def __init__(self, model: str | os.PathLike | onnx.ModelProto) -> None:
        self.model, self.external_dir = load_model(model)
        self._index = _GraphIndex.build(self.model)
        self._cuts: list[Cut] | None = None

    @property
    def input_names(self) -> list[str]:
        return list(self._index.graph_inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._index.graph_outputs)

    def input_infos(self) -> list[TensorInfo]:
        return [self._index.tensor_info(n) for n in self._index.graph_inputs]

    def output_infos(self) -> list[TensorInfo]:
        return [self._index.tensor_info(n) for n in self._index.graph_outputs]

    def param_bytes(self) -> int:
        """Bytes of all initializers and constant tensors (the whole model's weights)."""
        return sum(self._first_use_bytes().values())

    def _first_use_bytes(self) -> dict[int, int]:
        """Bytes of parameters by the first compute node that needs them."""
        idx = self._index
        g = self.model.graph
        const_bytes: dict[str, int] = {n: _tensor_nbytes(t) for n, t in idx.initializers.items()}
        for i in sorted(idx.constant_nodes):
            node = g.node[i]
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    const_bytes[node.output[0]] = _tensor_nbytes(attr.t)
        seen: set[str] = set()
        first: dict[int, int] = {}
        for i, inputs in enumerate(idx.node_inputs):
            if i in idx.constant_nodes:
                continue
            for root in self._constant_roots(inputs):
                if root in const_bytes and root not in seen:
                    seen.add(root)
                    first[i] = first.get(i, 0) + const_bytes[root]
        return first

    def _constant_roots(self, names: Iterable[str]) -> set[str]:
        """Initializers / Constant outputs that the given constant-derived tensors come from."""
        idx = self._index
        g = self.model.graph
        roots: set[str] = set()
        stack = [n for n in names if n in idx.constant_tensors]
        visited: set[str] = set()
        while stack:
            name = stack.pop()
            if name in visited:
                continue
            visited.add(name)
            if name in idx.initializers:
                roots.add(name)
                continue
            prod = idx.producer.get(name)
            if prod is None:
                continue
            inputs = idx.node_inputs[prod]
            if not inputs:
                roots.add(name)  # a Constant node
            stack.extend(inputs)
            if g.node[prod].op_type == "Constant":
                roots.add(name)
        return roots

    def cuts(self) -> list[Cut]:
        """Every legal cut, in topological order of the node it follows."""
        if self._cuts is not None:
            return self._cuts
        idx = self._index
        nodes = self.model.graph.node
        n = len(nodes)
        # Last compute step that needs each tensor (graph outputs: after the last node).
        last_use: dict[str, int] = {}
        for i, inputs in enumerate(idx.node_inputs):
            if i in idx.constant_nodes:
                continue
            for name in inputs:
                if name not in idx.constant_tensors:
                    last_use[name] = max(last_use.get(name, -1), i)
        for name in idx.graph_outputs:
            if name not in idx.constant_tensors:
                last_use[name] = n
        first_use = self._first_use_bytes()
        compute = [i for i in range(n) if i not in idx.constant_nodes]
        active: dict[str, None] = {}  # insertion-ordered set
        for name in idx.graph_inputs:
            if last_use.get(name, -1) >= 0:
                active[name] = None
        cuts: list[Cut] = []
        head_bytes = 0
        previous: tuple[str, ...] | None = None
        for pos, i in enumerate(compute):
            head_bytes += first_use.get(i, 0)
            for name in idx.node_inputs[i]:
                if name in active and last_use[name] <= i:
                    del active[name]
            for out in nodes[i].output:
                if out and last_use.get(out, -1) > i:
                    active[out] = None
            if pos == len(compute) - 1:
                break  # after the last compute node the tail would be empty
            crossing = tuple(active)
            if not crossing or crossing == previous:
                continue  # nothing new crosses: same split as the previous cut
            previous = crossing
            label = next((o for o in nodes[i].output if o in active), crossing[-1])
            cuts.append(
                Cut(
                    index=len(cuts),
                    node_index=i,
                    name=label,
                    tensors=tuple(idx.tensor_info(t) for t in crossing),
                    head_param_bytes=head_bytes,
                )
            )
        if not cuts:
            raise ValueError("the model has no legal cut (fewer than two compute nodes)")
        self._cuts = cuts
        return cuts

    def find_cut(self, key: str | int) -> Cut:
        """A cut by index (int or digit string) or by name (its label or a single tensor)."""
        cuts = self.cuts()
        if isinstance(key, int) or (isinstance(key, str) and key.lstrip("-").isdigit()):
            i = int(key)
            if not -len(cuts) <= i < len(cuts):
                raise ValueError(f"cut index {i} out of range: the model has {len(cuts)} cuts")
            return cuts[i]
        for cut in cuts:
            if cut.name == key:
                return cut
        raise ValueError(
            f"no cut named {key!r}; list them with `slicer cuts MODEL.onnx` (names or indices)"
        )

    # ----------------------------------------------------------------------- extraction

    def _closure(self, targets: Sequence[str], stop: set[str]) -> list[int]:
        """Nodes needed to compute ``targets`` from ``stop`` tensors (and constants)."""
        idx = self._index
        needed: set[int] = set()
        stack = [t for t in targets if t not in stop]
        seen: set[str] = set()
        while stack:
            name = stack.pop()
            if name in seen or name in stop or name in idx.initializers:
                continue
            seen.add(name)
            prod = idx.producer.get(name)
            if prod is None:
                if name in idx.graph_inputs:
                    raise ValueError(f"tensor {name!r} is not available on this side of the cut")
                continue
            if prod not in needed:
                needed.add(prod)
                stack.extend(idx.node_inputs[prod])
        return sorted(needed)

    def _submodel(
        self, nodes: list[int], inputs: Sequence[str], outputs: Sequence[str], suffix: str
    ) -> onnx.ModelProto:
        idx = self._index
        g = self.model.graph
        node_protos = [g.node[i] for i in nodes]
        used = {n for i in nodes for n in idx.node_inputs[i]} | set(outputs)
        inits = [t for t in g.initializer if t.name in used]
        names = used | {o for i in nodes for o in g.node[i].output}
        value_info = [vi for vi in g.value_info if vi.name in names]

        def vi(name: str) -> onnx.ValueInfoProto:
            tp = idx.value_types.get(name)
            out = onnx.ValueInfoProto(name=name)
            if tp is not None:
                out.type.CopyFrom(tp)
            return out

        graph = helper.make_graph(
            node_protos,
            f"{g.name or 'model'}_{suffix}",
            [vi(n) for n in inputs],
            [vi(n) for n in outputs],
            initializer=inits,
            value_info=value_info,
        )
        sub = helper.make_model(
            graph,
            opset_imports=list(self.model.opset_import),
            producer_name="slicer.split",
            ir_version=self.model.ir_version,
        )
        sub.functions.extend(self.model.functions)
        return sub

    def extract(self, cut: Cut | str | int) -> tuple[onnx.ModelProto, onnx.ModelProto]:
        """Head (model inputs -> cut tensors) and tail (cut tensors -> model outputs)."""
        if not isinstance(cut, Cut):
            cut = self.find_cut(cut)
        cut_names = [t.name for t in cut.tensors]
        head_nodes = self._closure(cut_names, set(self._index.graph_inputs))
        head_inputs = [
            n
            for n in self._index.graph_inputs
            if any(n in self._index.node_inputs[i] for i in head_nodes) or n in cut_names
        ]
        tail_nodes = self._closure(self._index.graph_outputs, set(cut_names))
        head = self._submodel(head_nodes, head_inputs, cut_names, "head")
        tail = self._submodel(tail_nodes, cut_names, self._index.graph_outputs, "tail")
        return head, tail


def session_bytes_or_path(model: onnx.ModelProto, workdir: str | None = None) -> bytes | str:
    """Something ``onnxruntime.InferenceSession`` accepts: bytes, or a saved path if huge."""
    if model.ByteSize() < _PROTO_LIMIT:
        return model.SerializeToString()
    folder = workdir or tempfile.mkdtemp(prefix="slicer-split-")
    path = os.path.join(folder, f"{model.graph.name}.onnx")
    onnx.save(model, path, save_as_external_data=True, location=f"{model.graph.name}.data")
    return path
