"""The back-end's request handler: decode cut tensors, batch tails across clients, run them.

One :class:`TailEngine` holds one model cut at one point (or the whole model, for the
cloud-only baseline) in one ONNX Runtime session. It is transport-free: the gRPC server
(:mod:`slicer.serve.server`) and the Ray Serve deployment (:mod:`slicer.serve.ray_engine`) both
call :meth:`TailEngine.run_batch` from worker threads.

Cross-client batching needs a tail whose leading axis is a batch axis. Exported models often
fix it to 1 (``Reshape`` to ``[1, -1]``), so the engine rewrites the tail once: leading dims of
inputs / outputs become symbolic and a leading ``1`` in a constant ``Reshape`` shape becomes
``0`` (copy the input's dim). The rewrite is then *verified* on two different random inputs
(batched run == two single runs); if it does not hold, the engine runs batch members one by
one and says so (``batched = False``).
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import onnx.numpy_helper

from . import wire
from . import wire_pb2 as pb

#: symbolic dims are taken as at most this many when sizing the decode allocation cap
SYMBOLIC_DIM_CAP = 4096


@dataclass
class Item:
    """One admitted request on its way through a batch."""

    request: pb.Request
    admitted: float = field(default_factory=time.perf_counter)
    context: Any = None  # the transport's handle (session, future)


@dataclass
class Outcome:
    """What the engine made of one item: a Reply (OK or with an error code)."""

    reply: pb.Reply
    decode_s: float = 0.0
    compute_s: float = 0.0
    compute_cpu_s: float = 0.0  # thread CPU time of the batch's tail run, shared by its members
    batch_size: int = 0
    bytes_in: int = 0


def make_batchable(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose leading input / output axis is a symbolic batch axis."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    init_names = {i.name for i in g.initializer}
    for vi in list(g.input) + list(g.output):
        if vi.name in init_names:
            continue
        dims = vi.type.tensor_type.shape.dim
        if len(dims):
            dims[0].Clear()
            dims[0].dim_param = "batch"
    del g.value_info[:]
    inits = {i.name: i for i in g.initializer}
    consts = {n.output[0]: n for n in g.node if n.op_type == "Constant" and n.output}
    for node in g.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        if any(a.name == "allowzero" and a.i == 1 for a in node.attribute):
            continue
        src = node.input[1]
        if src in inits:
            shape = onnx.numpy_helper.to_array(inits[src])
        elif src in consts:
            attr = [a for a in consts[src].attribute if a.name == "value"]
            if not attr:
                continue
            shape = onnx.numpy_helper.to_array(attr[0].t)
        else:
            continue
        if shape.ndim != 1 or shape.size < 2 or shape[0] != 1:
            continue
        fixed = shape.copy()
        fixed[0] = 0
        name = f"{src}__slicer_batch"
        if name not in inits:
            t = onnx.numpy_helper.from_array(fixed.astype(shape.dtype), name)
            g.initializer.append(t)
            inits[name] = t
        node.input[1] = name
    return m


def _ort_dtype(type_str: str) -> str:
    from ..split.runner import _ORT_TYPES

    dt = _ORT_TYPES.get(type_str)
    return np.dtype(dt).name if dt is not None else type_str


class TailEngine:
    """A model's tail (or the whole model) behind a batch interface.

    ``model``: ONNX path or ModelProto or shipped name already resolved to a path. ``cut``: a
    cut name or index (``None`` = cloud-only: the whole model runs here and requests carry
    the model inputs). ``threads``: ORT intra-op threads per run (1 keeps concurrent batches
    from oversubscribing the cores).
    """

    def __init__(
        self,
        model: Any,
        cut: str | int | None,
        *,
        threads: int = 1,
        providers: Sequence[str] | str | None = ("CPUExecutionProvider",),
        batching: bool = True,
        server_id: str | None = None,
        estimators: dict[str, Any] | None = None,
        transforms: dict[str, Any] | None = None,
    ) -> None:
        from ..split.graph import Partitioner
        from ..split.providers import make_session, resolve_providers

        self.partitioner = model if isinstance(model, Partitioner) else Partitioner(model)
        part = self.partitioner
        if cut is None or cut in ("full", "none"):
            self.cut = None
            self.cut_id = -1
            self.cut_name = "<full>"
            graph = part.model
        else:
            self.cut = part.find_cut(cut)
            self.cut_id = int(self.cut.index)
            self.cut_name = self.cut.name
            _, graph = part.extract(self.cut)
        self.fingerprint = wire.model_fingerprint(part.model.SerializeToString(), self.cut_name)
        self.providers = resolve_providers(providers)
        self.server_id = server_id or f"{os.uname().nodename}:{os.getpid()}"
        ext = part.external_dir
        self.batched = False
        self.batch_note = "batching disabled"
        session = None
        if batching:
            try:
                session = make_session(make_batchable(graph), self.providers, threads, ext)
                self.batched, self.batch_note = self._verify_batching(session)
            except Exception as exc:  # an ORT load failure of the rewrite: fall back
                self.batch_note = f"batch rewrite does not load ({type(exc).__name__})"
            if not self.batched:
                session = None
        self.session = session or make_session(graph, self.providers, threads, ext)
        inputs = self.session.get_inputs()
        self.tensor_names = tuple(i.name for i in inputs)
        self.input_dtypes = {i.name: _ort_dtype(i.type) for i in inputs}
        self._np_dtypes = {n: np.dtype(d) for n, d in self.input_dtypes.items()}
        self.input_shapes = {i.name: tuple(i.shape) for i in inputs}
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        self._lock = threading.Lock()
        self.runs = 0
        # inputs whose item shape (batch axis 1) is fully fixed: decoded into reused buffers
        self._fixed_item_shapes = {
            n: (1, *s[1:])
            for n, s in self.input_shapes.items()
            if len(s) >= 1 and all(isinstance(d, int) and d > 0 for d in s[1:])
        }
        self._buffers = threading.local()
        # calibrated decoder-side estimators (slicer.split.estimator), applied to decoded codec
        # tensors only: raw and side tensors arrive exact
        self.estimators = dict(estimators or {})
        # calibrated transforms (slicer.split.transform): codec tensors arrive as coefficients
        # and go through the inverse before any estimator; requests must name the same ones
        self.transforms = dict(transforms or {})
        for what, given in (("estimators", self.estimators), ("transforms", self.transforms)):
            unknown = sorted(set(given) - set(self.tensor_names))
            if unknown:
                raise ValueError(f"{what} for {unknown}, which are not inputs of the tail")
        self._transform_fps = tuple(
            (n, t.fingerprint()) for n, t in sorted(self.transforms.items())
        )

    # ------------------------------------------------------------------ batching self-check

    def _verify_batching(self, session) -> tuple[bool, str]:  # noqa: ANN001
        from ..split.runner import random_inputs

        a, b = random_inputs(session, seed=1), random_inputs(session, seed=2)
        for name, value in a.items():  # two inputs that differ everywhere, same shapes
            if value.dtype.kind in "iub":
                b[name] = value.copy()
        names = [o.name for o in session.get_outputs()]
        try:
            ya = session.run(names, a)
            yb = session.run(names, b)
            both = session.run(names, {n: np.concatenate([a[n], b[n]]) for n in a})
        except Exception as exc:
            return False, f"batched run fails ({type(exc).__name__}); running one by one"
        for single_a, single_b, batch in zip(ya, yb, both, strict=True):
            if batch.shape[:1] != (2,) or single_a.shape[:1] != (1,):
                return False, "outputs have no leading batch axis; running one by one"
            ref = np.concatenate([single_a, single_b])
            scale = float(np.max(np.abs(ref))) or 1.0
            if not np.allclose(batch, ref, rtol=1e-4, atol=1e-5 * scale):
                return False, "batched outputs differ from single runs; running one by one"
        return True, "batched across clients (verified on two random inputs)"

    def warm(self, max_batch: int) -> None:
        """One run at the largest batch the server will form, on random inputs, so that
        ONNX Runtime's memory arena reaches its steady size before clients come (it keeps
        what it grew to: memory measured later then reflects load, not growth)."""
        from ..split.runner import random_inputs

        feeds = random_inputs(self.session, seed=3)
        if self.batched and max_batch > 1:
            feeds = {n: np.concatenate([v] * max_batch) for n, v in feeds.items()}
        try:
            self.session.run(list(self.output_names), feeds)
        except Exception:  # noqa: BLE001 - a model that rejects random inputs: no warm-up
            pass

    # ------------------------------------------------------------------ info

    def expect(self, max_request_bytes: int = wire.MAX_REQUEST_BYTES) -> wire.Expect:
        return wire.Expect(
            self.fingerprint,
            self.cut_id,
            self.tensor_names,
            max_request_bytes,
            transforms=self._transform_fps,
        )

    def info(self, **caps: Any) -> pb.ServerInfo:
        return pb.ServerInfo(
            wire_version=wire.WIRE_VERSION,
            model_fingerprint=self.fingerprint,
            cut_id=self.cut_id,
            cut_name=self.cut_name,
            tensor_names=list(self.tensor_names),
            output_names=list(self.output_names),
            server_id=self.server_id,
            side_tensors=True,  # reads Tensor.side (docs/side.md)
            transform_fingerprint=wire.transform_fingerprint(dict(self._transform_fps)),
            **caps,
        )

    # ------------------------------------------------------------------ decode

    def _element_cap(self, name: str) -> int:
        count = 1
        for i, d in enumerate(self.input_shapes[name]):
            if isinstance(d, int) and d > 0 and not (i == 0 and self.batched):
                count *= d
            else:
                count *= SYMBOLIC_DIM_CAP if i else 64
        return count

    def _decode(self, req: pb.Request) -> dict[str, np.ndarray]:
        import slicer

        values: dict[str, np.ndarray] = {}
        for t in req.tensors:
            cap = self._element_cap(t.name)
            if t.WhichOneof("payload") == "codec":
                try:
                    array = np.asarray(slicer.decode(t.codec, max_elements=cap, threads=1))
                except (slicer.FormatError, ValueError) as exc:
                    raise wire.WireError(
                        wire.INVALID_ARGUMENT, f"tensor {t.name!r}: bad codec stream: {exc}"
                    ) from None
                array = self._restore(t.name, array)
            else:
                array = wire.exact_array(t, what=f"tensor {t.name!r}", max_elements=cap)
            values[t.name] = self._conform(t.name, array)
        return values

    def _restore(self, name: str, array: np.ndarray, batch: bool = False) -> np.ndarray:
        """A decoded codec tensor through its transform's inverse, then its estimator, if any
        (``batch``: rows (B, 1, *shape) of items (1, *shape))."""
        t, est = self.transforms.get(name), self.estimators.get(name)
        if (t is None and est is None) or array.dtype.kind != "f":
            return array
        try:
            if t is not None:  # the transform's axis counts in the item's dims
                rows = array.reshape(-1, *array.shape[2:]) if batch else array
                array = t.inverse(rows).astype(array.dtype, copy=False).reshape(array.shape)
            return array if est is None else est.apply(array)
        except ValueError as exc:  # another shape than calibrated: the request's fault
            raise wire.WireError(wire.INVALID_ARGUMENT, f"tensor {name!r}: {exc}") from None

    def _conform(self, name: str, array: np.ndarray) -> np.ndarray:
        want = self.input_dtypes[name]
        if array.dtype != self._np_dtypes[name]:
            raise wire.WireError(
                wire.INVALID_ARGUMENT, f"tensor {name!r} is {array.dtype.name}, expected {want}"
            )
        shape = self.input_shapes[name]
        ok = len(shape) == array.ndim and all(
            not (isinstance(d, int) and d > 0) or (i == 0 and self.batched) or d == n
            for i, (d, n) in enumerate(zip(shape, array.shape, strict=True))
        )
        if not ok or (array.ndim and array.shape[0] != 1):
            raise wire.WireError(
                wire.INVALID_ARGUMENT,
                f"tensor {name!r} has shape {list(array.shape)}, expected "
                f"{[d if isinstance(d, int) and d > 0 else '?' for d in shape]} (batch 1)",
            )
        return array

    # ------------------------------------------------------------------ run

    def run_batch(self, items: Sequence[Item]) -> list[Outcome]:
        """Decode every item, run the tail once per group of equal shapes, build replies.

        Codec streams of all items are decoded by one ``slicer.decode_batch`` call per input
        tensor, straight into the batch array the tail runs on; replies are built from the
        batch outputs in one pass. Items with raw tensors, or whose valid stream holds another
        shape than the batch's, take the per-item path and are grouped by shape.
        Never raises for a bad item: each gets its own error reply.
        """
        outcomes = [Outcome(_NO_REPLY) for _ in items]
        start = time.perf_counter()
        members, feeds, rest = self._decode_batch(items, outcomes)
        if members:
            share = (time.perf_counter() - start) / len(members)
            for i in members:
                outcomes[i].decode_s = share
        decoded: dict[int, dict[str, np.ndarray]] = {}
        for i in rest:
            req = items[i].request
            start = time.perf_counter()
            try:
                decoded[i] = self._decode(req)
            except wire.WireError as exc:
                outcomes[i].reply = wire.error_reply(req.session_id, req.seq, exc.code, exc.message)
            outcomes[i].decode_s = time.perf_counter() - start
        if members:
            if self.batched:
                self._run_group(items, members, feeds, outcomes)
            else:
                for j, i in enumerate(members):
                    one = {n: v[j : j + 1] for n, v in feeds.items()}
                    self._run_group(items, [i], one, outcomes)
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, values in decoded.items():
            key = tuple((n, values[n].shape) for n in self.tensor_names)
            groups[key].append(i)
        for group in groups.values():
            chunks = [group] if self.batched else [[m] for m in group]
            for chunk in chunks:
                feed = {
                    n: decoded[chunk[0]][n]
                    if len(chunk) == 1
                    else np.concatenate([decoded[i][n] for i in chunk])
                    for n in self.tensor_names
                }
                self._run_group(items, chunk, feed, outcomes)
        for item, out in zip(items, outcomes, strict=True):
            if out.reply is _NO_REPLY:  # not expected: every path above answers its items
                req = item.request
                out.reply = wire.error_reply(
                    req.session_id, req.seq, wire.INTERNAL, "the engine produced no reply"
                )
        return outcomes

    def _decode_batch(
        self, items: Sequence[Item], outcomes: list[Outcome]
    ) -> tuple[list[int], dict[str, np.ndarray], list[int]]:
        """Decode the items whose tensors come as the first item's do (codec or raw, by name).

        Each codec tensor is one ``slicer.decode_batch`` call for all of them; raw tensors are
        read item by item. Returns (members, feeds, rest): the items decoded here (in order),
        the tail's inputs for them (leading axis = members), and the items left to the per-item
        path (other payload kinds, or a valid tensor of another shape than the batch's). Items
        with a bad tensor get their error reply here.
        """
        import slicer

        members: list[int] = []
        rest: list[int] = []
        columns: dict[str, list[Any]] = {n: [] for n in self.tensor_names}
        layout = None
        for i, item in enumerate(items):
            tensors = item.request.tensors
            kinds = {t.name: t.WhichOneof("payload") for t in tensors}
            if layout is None:
                layout = kinds
            if kinds != layout:
                rest.append(i)
                continue
            members.append(i)
            for t in tensors:
                columns[t.name].append(t)
        keep = np.ones(len(members), dtype=bool)
        feeds: dict[str, np.ndarray] = {}

        def fail(j: int, exc: wire.WireError) -> None:
            keep[j] = False
            req = items[members[j]].request
            outcomes[members[j]].reply = wire.error_reply(
                req.session_id, req.seq, exc.code, exc.message
            )

        for name, kind in (layout or {}).items():
            column, cap = columns[name], self._element_cap(name)
            if kind == "codec":
                array, errors = slicer.decode_batch(
                    [t.codec for t in column],
                    out=self._batch_buffer(name, len(column)),
                    max_elements=cap,
                    threads=1,
                )
                for j, exc in enumerate(errors):
                    if exc is None or not keep[j]:
                        continue
                    if type(exc) is ValueError:  # a valid stream of another shape or dtype
                        keep[j] = False
                        rest.append(members[j])
                    else:
                        message = f"tensor {name!r}: bad codec stream: {exc}"
                        fail(j, wire.WireError(wire.INVALID_ARGUMENT, message))
            else:
                array = self._raw_column(name, column, cap, keep, members, rest, fail)
            if array is None or not keep.any():
                return [], {}, sorted(rest)
            if array.ndim < 2:  # 0-d tensors have no batch axis: the per-item path
                rest.extend(members[j] for j in np.flatnonzero(keep))
                return [], {}, sorted(rest)
            try:  # one check for all: every row has the same dtype and shape
                self._conform(name, array[int(np.argmax(keep))])
                if kind == "codec":
                    array = self._restore(name, array, batch=True)
            except wire.WireError as exc:
                for j in np.flatnonzero(keep):
                    fail(int(j), exc)
                return [], {}, sorted(rest)
            feeds[name] = array
        if not keep.all():
            members = [i for i, k in zip(members, keep, strict=True) if k]
            feeds = {n: v[keep] for n, v in feeds.items()}
        # (B, 1, *shape) -> (B, *shape): the leading 1 of every item is the batch axis
        feeds = {n: v.reshape((v.shape[0], *v.shape[2:])) for n, v in feeds.items()}
        return members, feeds, sorted(rest)

    def _batch_buffer(self, name: str, count: int) -> np.ndarray | None:
        """Rows (count, 1, *shape) for the codec tensor `name` when its shape is fixed, else
        None (decode_batch then takes the first stream's shape). The buffer belongs to the
        calling worker thread and is reused batch after batch (no fresh pages per batch): a
        batch's inputs are dead once its tail run has returned."""
        shape = self._fixed_item_shapes.get(name)
        if shape is None:
            return None
        buffers = self._buffers.__dict__
        buffer = buffers.get(name)
        if buffer is None or buffer.shape[0] < count:
            buffer = buffers[name] = np.empty((count, *shape), self._np_dtypes[name])
        return buffer[:count]

    def _raw_column(self, name, column, cap, keep, members, rest, fail) -> np.ndarray | None:  # noqa: ANN001
        """Raw or side tensors of one name, stacked (failed or other-shaped items: zero rows)."""
        arrays: list[np.ndarray | None] = [None] * len(column)
        first = None
        for j, t in enumerate(column):
            if not keep[j]:
                continue
            try:
                a = wire.exact_array(t, what=f"tensor {name!r}", max_elements=cap)
            except wire.WireError as exc:
                fail(j, exc)
                continue
            if first is None:
                first = a
            elif a.shape != first.shape or a.dtype != first.dtype:
                keep[j] = False
                rest.append(members[j])
                continue
            arrays[j] = a
        if first is None:
            return None
        out = np.zeros((len(column), *first.shape), first.dtype)
        for j, a in enumerate(arrays):
            if a is not None and keep[j]:
                out[j] = a
        return out

    def _run_group(self, items, chunk, feeds, outcomes) -> None:  # noqa: ANN001
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            results = self.session.run(list(self.output_names), feeds)
        except Exception as exc:  # ORT rejects values it cannot run: the request's fault
            for i in chunk:
                req = items[i].request
                outcomes[i].reply = wire.error_reply(
                    req.session_id,
                    req.seq,
                    wire.INVALID_ARGUMENT,
                    f"the model cannot run these tensors: {str(exc).splitlines()[0][:200]}",
                )
            return
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        with self._lock:
            self.runs += 1
        self._replies(items, chunk, results, outcomes, wall, cpu)

    def _replies(self, items, chunk, results, outcomes, wall, cpu) -> None:  # noqa: ANN001
        """The replies of one tail run; top-k replies of the batch in one partial sort."""
        size = len(chunk)
        compute_us = int(wall * 1e6)
        top: dict[int, list[int]] = defaultdict(list)  # top_k -> positions in chunk
        for j, i in enumerate(chunk):
            req = items[i].request
            out = outcomes[i]
            out.compute_s = wall
            out.compute_cpu_s = cpu
            out.batch_size = size
            if req.reply_kind == pb.TOP_K:
                top[req.top_k].append(j)
                continue
            outs = [r[j : j + 1] if size > 1 else r for r in results]
            try:
                out.reply = wire.reply_payload(
                    pb.Reply(session_id=req.session_id, seq=req.seq),
                    self.output_names,
                    outs,
                    req.reply_kind,
                    req.top_k,
                )
            except wire.WireError as exc:
                out.reply = wire.error_reply(req.session_id, req.seq, exc.code, exc.message)
            self._stamp(out, compute_us, size)
        if not top:
            return
        first = np.asarray(results[0])
        width = first.shape[-1] if first.ndim else 1
        # each item's last row of its first output, as reply_payload takes it
        rows = first.astype(np.float32, copy=False).reshape(size if size > 1 else 1, -1, width)
        rows = rows[:, -1, :]
        # What every top-k reply of this run shares (server id, kind, timing but decode_us),
        # serialized once; each reply is parsed from it, then takes its own fields.
        shared = pb.Reply(kind=pb.TOP_K, server_id=self.server_id)
        shared.timing.compute_us = compute_us
        shared.timing.batch_size = size
        template = shared.SerializeToString()
        parse = pb.Reply.FromString
        for k, positions in top.items():
            picked = rows if len(positions) == len(rows) else rows[positions]
            ids, values = wire.top_k_rows_values(picked, k)
            for j, id_list, value_list in zip(
                positions, ids.tolist(), values.tolist(), strict=True
            ):
                i = chunk[j]
                req = items[i].request
                out = outcomes[i]
                reply = out.reply = parse(template)
                reply.session_id = req.session_id
                reply.seq = req.seq
                reply.top_k_ids.extend(id_list)
                reply.top_k_values.extend(value_list)
                reply.timing.decode_us = int(out.decode_s * 1e6)

    def _stamp(self, out: Outcome, compute_us: int, size: int) -> None:
        reply = out.reply
        reply.server_id = self.server_id
        timing = reply.timing
        timing.decode_us = int(out.decode_s * 1e6)
        timing.compute_us = compute_us
        timing.batch_size = size


_NO_REPLY = pb.Reply()  # placeholder of an outcome not answered yet (never sent)


class LLMEngine:
    """Autoregressive LLM sessions (:mod:`slicer.llm`): per session, the tail's KV cache.

    Each wire session owns one :class:`slicer.llm.ServerSession` (the tail graph of layers
    ``cut``..L-1 with its own KV cache), created by the session's first message (a prefill or
    a handover) and dropped when the session ends (stream end, idle expiry). A request carries
    one ``slicer.llm`` rows message in ``llm_message``; the reply carries the token message.
    Sessions are not batched with each other (each has its own cache); a session's messages
    run one at a time, in order. ``max_sessions`` caps the caches held (each holds its own ONNX
    Runtime session of the tail: memory grows with it). Malformed messages answer
    INVALID_ARGUMENT, messages that do not fit the session's state (step, position, model,
    cut) FAILED_PRECONDITION; neither changes the session.
    """

    batched = False

    def __init__(
        self,
        model: str,
        cut: int,
        *,
        max_sessions: int = 4,
        threads: int = 1,
        server_id: str | None = None,
    ) -> None:
        from ..llm import export

        if isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1:
            raise ValueError(f"max_sessions must be a positive int, got {max_sessions!r}")
        self.model = model
        self.info_llm = export.model_info(model)
        self.cut_id = int(export.check_cut(self.info_llm, int(cut)))
        self.cut_name = f"{model} layer {self.cut_id}"
        self.fingerprint = wire.model_fingerprint(
            self.info_llm.fingerprint.encode(), f"llm:{self.cut_id}"
        )
        self.tensor_names: tuple[str, ...] = ()
        self.output_names = ("token",)
        self.max_sessions = max_sessions
        self.threads = threads
        self.server_id = server_id or f"{os.uname().nodename}:{os.getpid()}"
        self.batch_note = (
            f"LLM sessions (tail from layer {self.cut_id}, KV cache per session, at most "
            f"{max_sessions})"
        )
        self._sessions: dict[str, tuple[Any, threading.Lock]] = {}
        self._lock = threading.Lock()

    def expect(self, max_request_bytes: int = wire.MAX_REQUEST_BYTES) -> wire.Expect:
        return wire.Expect(self.fingerprint, self.cut_id, (), max_request_bytes, llm=True)

    def info(self, **caps: Any) -> pb.ServerInfo:
        return pb.ServerInfo(
            wire_version=wire.WIRE_VERSION,
            model_fingerprint=self.fingerprint,
            cut_id=self.cut_id,
            cut_name=self.cut_name,
            output_names=list(self.output_names),
            server_id=self.server_id,
            kind="llm",
            **caps,
        )

    def warm(self, max_batch: int) -> None:
        pass  # tails load per session

    def end_session(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    def _session(self, sid: str, message: bytes) -> tuple[Any, threading.Lock]:
        from ..llm import ServerSession
        from ..llm.messages import parse

        with self._lock:
            held = self._sessions.get(sid)
            if held is not None:
                return held
            if len(self._sessions) >= self.max_sessions:
                raise wire.WireError(
                    wire.RESOURCE_EXHAUSTED,
                    f"{len(self._sessions)} LLM sessions hold a KV cache (cap "
                    f"{self.max_sessions}); retry after one ends",
                    retry_after_ms=1000,
                )
            first = parse(message)  # MessageError (a FormatError) when malformed
            held = (
                ServerSession(
                    self.model, self.cut_id, session_id=first.session, threads=self.threads
                ),
                threading.Lock(),
            )
            self._sessions[sid] = held
            return held

    def run_batch(self, items: Sequence[Item]) -> list[Outcome]:
        import slicer

        from ..llm.messages import ProtocolError, parse

        outcomes = []
        for item in items:
            req = item.request
            out = Outcome(pb.Reply(session_id=req.session_id, seq=req.seq))
            start, cpu = time.perf_counter(), time.thread_time()
            try:
                server, lock = self._session(req.session_id, req.llm_message)
                with lock:
                    reply = server.handle(req.llm_message)
                out.reply.kind = pb.TOKEN
                out.reply.llm_message = reply
                out.reply.top_k_ids.append(int(np.frombuffer(parse(reply).payload, "<u4")[0]))
                out.reply.server_id = self.server_id
                out.decode_s = server.last_decode_ms / 1e3
            except wire.WireError as exc:
                out.reply = wire.error_reply(
                    req.session_id, req.seq, exc.code, exc.message, exc.retry_after_ms
                )
            except slicer.FormatError as exc:
                out.reply = wire.error_reply(
                    req.session_id, req.seq, wire.INVALID_ARGUMENT, f"bad llm_message: {exc}"
                )
            except ProtocolError as exc:
                out.reply = wire.error_reply(
                    req.session_id, req.seq, wire.FAILED_PRECONDITION, str(exc)
                )
            out.compute_s = time.perf_counter() - start
            out.compute_cpu_s = time.thread_time() - cpu
            out.batch_size = 1
            out.reply.timing.decode_us = int(out.decode_s * 1e6)
            out.reply.timing.compute_us = int(out.compute_s * 1e6)
            out.reply.timing.batch_size = 1
            outcomes.append(out)
        return outcomes
