from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReplyKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPLY_KIND_UNSPECIFIED: _ClassVar[ReplyKind]
    OUTPUTS: _ClassVar[ReplyKind]
    LOGITS: _ClassVar[ReplyKind]
    TOP_K: _ClassVar[ReplyKind]
    TOKEN: _ClassVar[ReplyKind]
    EMBEDDING: _ClassVar[ReplyKind]
REPLY_KIND_UNSPECIFIED: ReplyKind
OUTPUTS: ReplyKind
LOGITS: ReplyKind
TOP_K: ReplyKind
TOKEN: ReplyKind
EMBEDDING: ReplyKind

class Tensor(_message.Message):
    __slots__ = ("name", "codec", "raw", "side")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    name: str
    codec: bytes
    raw: RawTensor
    side: bytes
    def __init__(self, name: _Optional[str] = ..., codec: _Optional[bytes] = ..., raw: _Optional[_Union[RawTensor, _Mapping]] = ..., side: _Optional[bytes] = ...) -> None: ...

class RawTensor(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Request(_message.Message):
    __slots__ = ("wire_version", "model_fingerprint", "cut_id", "session_id", "seq", "tensors", "reply_kind", "top_k", "llm_message", "transform_fingerprint")
    WIRE_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    CUT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    REPLY_KIND_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    LLM_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TRANSFORM_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    wire_version: int
    model_fingerprint: str
    cut_id: int
    session_id: str
    seq: int
    tensors: _containers.RepeatedCompositeFieldContainer[Tensor]
    reply_kind: ReplyKind
    top_k: int
    llm_message: bytes
    transform_fingerprint: str
    def __init__(self, wire_version: _Optional[int] = ..., model_fingerprint: _Optional[str] = ..., cut_id: _Optional[int] = ..., session_id: _Optional[str] = ..., seq: _Optional[int] = ..., tensors: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ..., reply_kind: _Optional[_Union[ReplyKind, str]] = ..., top_k: _Optional[int] = ..., llm_message: _Optional[bytes] = ..., transform_fingerprint: _Optional[str] = ...) -> None: ...

class Timing(_message.Message):
    __slots__ = ("queue_us", "decode_us", "compute_us", "batch_size")
    QUEUE_US_FIELD_NUMBER: _ClassVar[int]
    DECODE_US_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_US_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    queue_us: int
    decode_us: int
    compute_us: int
    batch_size: int
    def __init__(self, queue_us: _Optional[int] = ..., decode_us: _Optional[int] = ..., compute_us: _Optional[int] = ..., batch_size: _Optional[int] = ...) -> None: ...

class Reply(_message.Message):
    __slots__ = ("session_id", "seq", "code", "message", "retry_after_ms", "kind", "outputs", "output_names", "top_k_ids", "top_k_values", "timing", "server_id", "llm_message")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAMES_FIELD_NUMBER: _ClassVar[int]
    TOP_K_IDS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_VALUES_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    LLM_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    seq: int
    code: int
    message: str
    retry_after_ms: int
    kind: ReplyKind
    outputs: _containers.RepeatedCompositeFieldContainer[RawTensor]
    output_names: _containers.RepeatedScalarFieldContainer[str]
    top_k_ids: _containers.RepeatedScalarFieldContainer[int]
    top_k_values: _containers.RepeatedScalarFieldContainer[float]
    timing: Timing
    server_id: str
    llm_message: bytes
    def __init__(self, session_id: _Optional[str] = ..., seq: _Optional[int] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., retry_after_ms: _Optional[int] = ..., kind: _Optional[_Union[ReplyKind, str]] = ..., outputs: _Optional[_Iterable[_Union[RawTensor, _Mapping]]] = ..., output_names: _Optional[_Iterable[str]] = ..., top_k_ids: _Optional[_Iterable[int]] = ..., top_k_values: _Optional[_Iterable[float]] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., server_id: _Optional[str] = ..., llm_message: _Optional[bytes] = ...) -> None: ...

class RequestBatch(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[Request]
    def __init__(self, requests: _Optional[_Iterable[_Union[Request, _Mapping]]] = ...) -> None: ...

class ReplyBatch(_message.Message):
    __slots__ = ("replies",)
    REPLIES_FIELD_NUMBER: _ClassVar[int]
    replies: _containers.RepeatedCompositeFieldContainer[Reply]
    def __init__(self, replies: _Optional[_Iterable[_Union[Reply, _Mapping]]] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("wire_version", "model_fingerprint", "cut_id", "cut_name", "tensor_names", "output_names", "max_request_bytes", "max_reply_bytes", "max_sessions", "session_idle_s", "max_batch", "server_id", "engine", "kind", "side_tensors", "max_requests_per_message", "transform_fingerprint")
    WIRE_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    CUT_ID_FIELD_NUMBER: _ClassVar[int]
    CUT_NAME_FIELD_NUMBER: _ClassVar[int]
    TENSOR_NAMES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAMES_FIELD_NUMBER: _ClassVar[int]
    MAX_REQUEST_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_REPLY_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    SESSION_IDLE_S_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SIDE_TENSORS_FIELD_NUMBER: _ClassVar[int]
    MAX_REQUESTS_PER_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TRANSFORM_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    wire_version: int
    model_fingerprint: str
    cut_id: int
    cut_name: str
    tensor_names: _containers.RepeatedScalarFieldContainer[str]
    output_names: _containers.RepeatedScalarFieldContainer[str]
    max_request_bytes: int
    max_reply_bytes: int
    max_sessions: int
    session_idle_s: int
    max_batch: int
    server_id: str
    engine: str
    kind: str
    side_tensors: bool
    max_requests_per_message: int
    transform_fingerprint: str
    def __init__(self, wire_version: _Optional[int] = ..., model_fingerprint: _Optional[str] = ..., cut_id: _Optional[int] = ..., cut_name: _Optional[str] = ..., tensor_names: _Optional[_Iterable[str]] = ..., output_names: _Optional[_Iterable[str]] = ..., max_request_bytes: _Optional[int] = ..., max_reply_bytes: _Optional[int] = ..., max_sessions: _Optional[int] = ..., session_idle_s: _Optional[int] = ..., max_batch: _Optional[int] = ..., server_id: _Optional[str] = ..., engine: _Optional[str] = ..., kind: _Optional[str] = ..., side_tensors: _Optional[bool] = ..., max_requests_per_message: _Optional[int] = ..., transform_fingerprint: _Optional[str] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthReply(_message.Message):
    __slots__ = ("live", "ready", "sessions", "queue_depth")
    LIVE_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    live: bool
    ready: bool
    sessions: int
    queue_depth: int
    def __init__(self, live: _Optional[bool] = ..., ready: _Optional[bool] = ..., sessions: _Optional[int] = ..., queue_depth: _Optional[int] = ...) -> None: ...
