from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_OK: _ClassVar[Severity]
    SEVERITY_WARN: _ClassVar[Severity]
    SEVERITY_CRIT: _ClassVar[Severity]
    SEVERITY_UNKNOWN: _ClassVar[Severity]
SEVERITY_UNSPECIFIED: Severity
SEVERITY_OK: Severity
SEVERITY_WARN: Severity
SEVERITY_CRIT: Severity
SEVERITY_UNKNOWN: Severity

class AgentMessage(_message.Message):
    __slots__ = ("hello", "batch", "heartbeat", "gaps", "session_status", "session_data", "session_window", "session_close")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    GAPS_FIELD_NUMBER: _ClassVar[int]
    SESSION_STATUS_FIELD_NUMBER: _ClassVar[int]
    SESSION_DATA_FIELD_NUMBER: _ClassVar[int]
    SESSION_WINDOW_FIELD_NUMBER: _ClassVar[int]
    SESSION_CLOSE_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    batch: EntryBatch
    heartbeat: Heartbeat
    gaps: GapReport
    session_status: SessionStatus
    session_data: SessionData
    session_window: SessionWindow
    session_close: SessionClose
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., batch: _Optional[_Union[EntryBatch, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., gaps: _Optional[_Union[GapReport, _Mapping]] = ..., session_status: _Optional[_Union[SessionStatus, _Mapping]] = ..., session_data: _Optional[_Union[SessionData, _Mapping]] = ..., session_window: _Optional[_Union[SessionWindow, _Mapping]] = ..., session_close: _Optional[_Union[SessionClose, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("protocol_version", "agent_id", "agent_version", "hostname", "labels", "facts", "spool_high_seq", "spool_low_seq", "features")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    SPOOL_HIGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    SPOOL_LOW_SEQ_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    agent_id: str
    agent_version: str
    hostname: str
    labels: _containers.ScalarMap[str, str]
    facts: HostFacts
    spool_high_seq: int
    spool_low_seq: int
    features: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, protocol_version: _Optional[int] = ..., agent_id: _Optional[str] = ..., agent_version: _Optional[str] = ..., hostname: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., facts: _Optional[_Union[HostFacts, _Mapping]] = ..., spool_high_seq: _Optional[int] = ..., spool_low_seq: _Optional[int] = ..., features: _Optional[_Iterable[str]] = ...) -> None: ...

class HostFacts(_message.Message):
    __slots__ = ("os_id", "os_version", "kernel", "arch", "cpu_count", "memory_bytes", "boot_time_unix_ms")
    OS_ID_FIELD_NUMBER: _ClassVar[int]
    OS_VERSION_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    CPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    BOOT_TIME_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    os_id: str
    os_version: str
    kernel: str
    arch: str
    cpu_count: int
    memory_bytes: int
    boot_time_unix_ms: int
    def __init__(self, os_id: _Optional[str] = ..., os_version: _Optional[str] = ..., kernel: _Optional[str] = ..., arch: _Optional[str] = ..., cpu_count: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., boot_time_unix_ms: _Optional[int] = ...) -> None: ...

class EntryBatch(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[Entry]
    def __init__(self, entries: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ...) -> None: ...

class Entry(_message.Message):
    __slots__ = ("seq", "ts_unix_ms", "result", "inventory", "health", "recording", "session_event")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TS_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    INVENTORY_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    RECORDING_FIELD_NUMBER: _ClassVar[int]
    SESSION_EVENT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    ts_unix_ms: int
    result: CheckResult
    inventory: Inventory
    health: AgentHealth
    recording: SessionRecordingChunk
    session_event: SessionEvent
    def __init__(self, seq: _Optional[int] = ..., ts_unix_ms: _Optional[int] = ..., result: _Optional[_Union[CheckResult, _Mapping]] = ..., inventory: _Optional[_Union[Inventory, _Mapping]] = ..., health: _Optional[_Union[AgentHealth, _Mapping]] = ..., recording: _Optional[_Union[SessionRecordingChunk, _Mapping]] = ..., session_event: _Optional[_Union[SessionEvent, _Mapping]] = ...) -> None: ...

class CheckResult(_message.Message):
    __slots__ = ("check", "layer", "severity", "key", "summary", "duration_ms", "findings", "metrics", "inspection_id", "metric_keys", "metric_values")
    CHECK_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    INSPECTION_ID_FIELD_NUMBER: _ClassVar[int]
    METRIC_KEYS_FIELD_NUMBER: _ClassVar[int]
    METRIC_VALUES_FIELD_NUMBER: _ClassVar[int]
    check: str
    layer: str
    severity: Severity
    key: str
    summary: str
    duration_ms: float
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    metrics: _containers.RepeatedCompositeFieldContainer[MetricSample]
    inspection_id: str
    metric_keys: bytes
    metric_values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, check: _Optional[str] = ..., layer: _Optional[str] = ..., severity: _Optional[_Union[Severity, str]] = ..., key: _Optional[str] = ..., summary: _Optional[str] = ..., duration_ms: _Optional[float] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ..., metrics: _Optional[_Iterable[_Union[MetricSample, _Mapping]]] = ..., inspection_id: _Optional[str] = ..., metric_keys: _Optional[bytes] = ..., metric_values: _Optional[_Iterable[float]] = ...) -> None: ...

class MetricKey(_message.Message):
    __slots__ = ("name", "unit", "labels")
    NAME_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    unit: str
    labels: _containers.RepeatedCompositeFieldContainer[Label]
    def __init__(self, name: _Optional[str] = ..., unit: _Optional[str] = ..., labels: _Optional[_Iterable[_Union[Label, _Mapping]]] = ...) -> None: ...

class MetricKeys(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[MetricKey]
    def __init__(self, keys: _Optional[_Iterable[_Union[MetricKey, _Mapping]]] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("severity", "key", "summary", "item", "details")
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    severity: Severity
    key: str
    summary: str
    item: str
    details: str
    def __init__(self, severity: _Optional[_Union[Severity, str]] = ..., key: _Optional[str] = ..., summary: _Optional[str] = ..., item: _Optional[str] = ..., details: _Optional[str] = ...) -> None: ...

class MetricSample(_message.Message):
    __slots__ = ("name", "value", "unit", "labels")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    unit: str
    labels: _containers.RepeatedCompositeFieldContainer[Label]
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ..., unit: _Optional[str] = ..., labels: _Optional[_Iterable[_Union[Label, _Mapping]]] = ...) -> None: ...

class Label(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class Inventory(_message.Message):
    __slots__ = ("document_json", "sha256")
    DOCUMENT_JSON_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    document_json: str
    sha256: str
    def __init__(self, document_json: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class AgentHealth(_message.Message):
    __slots__ = ("cpu_seconds_total", "rss_bytes", "spool_depth", "spool_bytes", "dropped_total", "cycle_cpu_seconds", "check_duration_ms", "abandoned_threads")
    class CheckDurationMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    CPU_SECONDS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    SPOOL_DEPTH_FIELD_NUMBER: _ClassVar[int]
    SPOOL_BYTES_FIELD_NUMBER: _ClassVar[int]
    DROPPED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CYCLE_CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CHECK_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    ABANDONED_THREADS_FIELD_NUMBER: _ClassVar[int]
    cpu_seconds_total: float
    rss_bytes: int
    spool_depth: int
    spool_bytes: int
    dropped_total: int
    cycle_cpu_seconds: float
    check_duration_ms: _containers.ScalarMap[str, float]
    abandoned_threads: int
    def __init__(self, cpu_seconds_total: _Optional[float] = ..., rss_bytes: _Optional[int] = ..., spool_depth: _Optional[int] = ..., spool_bytes: _Optional[int] = ..., dropped_total: _Optional[int] = ..., cycle_cpu_seconds: _Optional[float] = ..., check_duration_ms: _Optional[_Mapping[str, float]] = ..., abandoned_threads: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("ts_unix_ms", "spool_depth")
    TS_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    SPOOL_DEPTH_FIELD_NUMBER: _ClassVar[int]
    ts_unix_ms: int
    spool_depth: int
    def __init__(self, ts_unix_ms: _Optional[int] = ..., spool_depth: _Optional[int] = ...) -> None: ...

class GapReport(_message.Message):
    __slots__ = ("gaps",)
    GAPS_FIELD_NUMBER: _ClassVar[int]
    gaps: _containers.RepeatedCompositeFieldContainer[Gap]
    def __init__(self, gaps: _Optional[_Iterable[_Union[Gap, _Mapping]]] = ...) -> None: ...

class Gap(_message.Message):
    __slots__ = ("first_seq", "last_seq", "count", "reason", "dropped_at_unix_ms")
    FIRST_SEQ_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DROPPED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    first_seq: int
    last_seq: int
    count: int
    reason: str
    dropped_at_unix_ms: int
    def __init__(self, first_seq: _Optional[int] = ..., last_seq: _Optional[int] = ..., count: _Optional[int] = ..., reason: _Optional[str] = ..., dropped_at_unix_ms: _Optional[int] = ...) -> None: ...

class CollectorMessage(_message.Message):
    __slots__ = ("welcome", "ack", "inspection", "session_grant", "session_open", "session_data", "session_window", "session_close", "session_revoke")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    INSPECTION_FIELD_NUMBER: _ClassVar[int]
    SESSION_GRANT_FIELD_NUMBER: _ClassVar[int]
    SESSION_OPEN_FIELD_NUMBER: _ClassVar[int]
    SESSION_DATA_FIELD_NUMBER: _ClassVar[int]
    SESSION_WINDOW_FIELD_NUMBER: _ClassVar[int]
    SESSION_CLOSE_FIELD_NUMBER: _ClassVar[int]
    SESSION_REVOKE_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    ack: Ack
    inspection: InspectionRequest
    session_grant: SessionGrant
    session_open: SessionOpen
    session_data: SessionData
    session_window: SessionWindow
    session_close: SessionClose
    session_revoke: SessionRevoke
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ..., inspection: _Optional[_Union[InspectionRequest, _Mapping]] = ..., session_grant: _Optional[_Union[SessionGrant, _Mapping]] = ..., session_open: _Optional[_Union[SessionOpen, _Mapping]] = ..., session_data: _Optional[_Union[SessionData, _Mapping]] = ..., session_window: _Optional[_Union[SessionWindow, _Mapping]] = ..., session_close: _Optional[_Union[SessionClose, _Mapping]] = ..., session_revoke: _Optional[_Union[SessionRevoke, _Mapping]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("agent_id", "customer", "resume_after_seq", "server_time_unix_ms", "max_batch_entries", "max_message_bytes", "heartbeat_interval_s", "features")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    RESUME_AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    customer: str
    resume_after_seq: int
    server_time_unix_ms: int
    max_batch_entries: int
    max_message_bytes: int
    heartbeat_interval_s: int
    features: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, agent_id: _Optional[str] = ..., customer: _Optional[str] = ..., resume_after_seq: _Optional[int] = ..., server_time_unix_ms: _Optional[int] = ..., max_batch_entries: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., heartbeat_interval_s: _Optional[int] = ..., features: _Optional[_Iterable[str]] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("durable_through_seq", "gaps_recorded")
    DURABLE_THROUGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    GAPS_RECORDED_FIELD_NUMBER: _ClassVar[int]
    durable_through_seq: int
    gaps_recorded: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, durable_through_seq: _Optional[int] = ..., gaps_recorded: _Optional[_Iterable[int]] = ...) -> None: ...

class InspectionRequest(_message.Message):
    __slots__ = ("inspection_id", "checks", "layers", "deadline_unix_ms")
    INSPECTION_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    inspection_id: str
    checks: _containers.RepeatedScalarFieldContainer[str]
    layers: _containers.RepeatedScalarFieldContainer[str]
    deadline_unix_ms: int
    def __init__(self, inspection_id: _Optional[str] = ..., checks: _Optional[_Iterable[str]] = ..., layers: _Optional[_Iterable[str]] = ..., deadline_unix_ms: _Optional[int] = ...) -> None: ...

class SessionGrant(_message.Message):
    __slots__ = ("session_id", "agent_id", "case_id", "engineer", "reason", "mode", "engineer_public_key", "not_before_unix_ms", "not_after_unix_ms", "approval", "approved_by", "approved_at_unix_ms")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    ENGINEER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    ENGINEER_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    APPROVED_BY_FIELD_NUMBER: _ClassVar[int]
    APPROVED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    agent_id: str
    case_id: str
    engineer: str
    reason: str
    mode: str
    engineer_public_key: str
    not_before_unix_ms: int
    not_after_unix_ms: int
    approval: str
    approved_by: str
    approved_at_unix_ms: int
    def __init__(self, session_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., case_id: _Optional[str] = ..., engineer: _Optional[str] = ..., reason: _Optional[str] = ..., mode: _Optional[str] = ..., engineer_public_key: _Optional[str] = ..., not_before_unix_ms: _Optional[int] = ..., not_after_unix_ms: _Optional[int] = ..., approval: _Optional[str] = ..., approved_by: _Optional[str] = ..., approved_at_unix_ms: _Optional[int] = ...) -> None: ...

class SessionOpen(_message.Message):
    __slots__ = ("session_id", "stream_id", "window_bytes")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    WINDOW_BYTES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    stream_id: int
    window_bytes: int
    def __init__(self, session_id: _Optional[str] = ..., stream_id: _Optional[int] = ..., window_bytes: _Optional[int] = ...) -> None: ...

class SessionData(_message.Message):
    __slots__ = ("stream_id", "data")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    stream_id: int
    data: bytes
    def __init__(self, stream_id: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class SessionWindow(_message.Message):
    __slots__ = ("stream_id", "add_bytes")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    ADD_BYTES_FIELD_NUMBER: _ClassVar[int]
    stream_id: int
    add_bytes: int
    def __init__(self, stream_id: _Optional[int] = ..., add_bytes: _Optional[int] = ...) -> None: ...

class SessionClose(_message.Message):
    __slots__ = ("stream_id", "reason")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    stream_id: int
    reason: str
    def __init__(self, stream_id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class SessionRevoke(_message.Message):
    __slots__ = ("session_id", "reason")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    reason: str
    def __init__(self, session_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SessionStatus(_message.Message):
    __slots__ = ("session_id", "state", "reason", "host_key", "host_key_sha256", "approved_by", "ts_unix_ms", "stream_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HOST_KEY_FIELD_NUMBER: _ClassVar[int]
    HOST_KEY_SHA256_FIELD_NUMBER: _ClassVar[int]
    APPROVED_BY_FIELD_NUMBER: _ClassVar[int]
    TS_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    state: str
    reason: str
    host_key: str
    host_key_sha256: str
    approved_by: str
    ts_unix_ms: int
    stream_id: int
    def __init__(self, session_id: _Optional[str] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ..., host_key: _Optional[str] = ..., host_key_sha256: _Optional[str] = ..., approved_by: _Optional[str] = ..., ts_unix_ms: _Optional[int] = ..., stream_id: _Optional[int] = ...) -> None: ...

class SessionRecordingChunk(_message.Message):
    __slots__ = ("session_id", "index", "data", "last", "sha256")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    index: int
    data: bytes
    last: bool
    sha256: str
    def __init__(self, session_id: _Optional[str] = ..., index: _Optional[int] = ..., data: _Optional[bytes] = ..., last: _Optional[bool] = ..., sha256: _Optional[str] = ...) -> None: ...

class SessionEvent(_message.Message):
    __slots__ = ("session_id", "event", "actor", "detail")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    event: str
    actor: str
    detail: str
    def __init__(self, session_id: _Optional[str] = ..., event: _Optional[str] = ..., actor: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...
