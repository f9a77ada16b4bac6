"""Pydantic v2 models of every wire body: the edge where untrusted bytes become typed data.

Every model forbids unknown fields and bounds every string, list and map, so a hostile body is
refused here with a message naming the field, before it reaches storage. Ids travel as 16-byte
binaries. Unary bodies are msgpack maps; the recorder stream uses compact arrays
(`RecordBatchIn.FIELDS` names their positions). Only `codec.py` turns these into dataclasses.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictBytes, StrictStr

from .control_store import CANCEL_DEADLINE
from .log_records import MARKER_ROOM, MAX_LOG_BYTES

# Limits, all in one place; `codec.py` adds the byte limits on whole messages.
MAX_NAME = 1_000
MAX_MESSAGE = 64 * 1024
MAX_TAGS = 64
MAX_PARAMETERS = 1_000
MAX_DEPTH = 32
MAX_UPSTREAM = 10_000
MAX_BATCH_ITEMS = 100_000
MAX_LIST = 10_000


def check_depth(value: Any, limit: int = MAX_DEPTH) -> Any:
    """Refuse containers nested deeper than `limit` (iterative, so it cannot overflow)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            raise ValueError(f"nested deeper than {limit} levels")
        stack.extend((child, depth + 1) for child in children)
    return value


Uuid16 = Annotated[StrictBytes, Field(min_length=16, max_length=16)]
Name = Annotated[StrictStr, Field(max_length=MAX_NAME)]
Message = Annotated[StrictStr, Field(max_length=MAX_MESSAGE)]
Timestamp = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Tags = Annotated[list[Name], Field(max_length=MAX_TAGS)]
Parameters = Annotated[
    dict[StrictStr, Any], Field(max_length=MAX_PARAMETERS), AfterValidator(check_depth)
]
Upstream = Annotated[
    dict[Name, Annotated[list[Uuid16], Field(max_length=MAX_UPSTREAM)]],
    Field(max_length=MAX_PARAMETERS),
]
Limit = Annotated[int, Field(strict=True, ge=0, le=MAX_LIST)]
Pid = Annotated[int, Field(strict=True, ge=0, le=2**63 - 1)]
#: `TaskRunRecord.moved`: the attempt that moved a run (a bool from a client before attempts)
Moved = StrictBool | Annotated[int, Field(strict=True, ge=0, le=2**31 - 1)]


class Wire(BaseModel):
    """Base of every wire model: unknown fields are an error, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class FlowRunIn(Wire):
    id: Uuid16
    name: Name
    flow_name: Name
    parameters: Parameters = {}
    parent_flow_run_id: Uuid16 | None = None
    parent_task_run_id: Uuid16 | None = None
    tags: Tags = []
    created: Timestamp = 0.0
    host: Name | None = None
    pid: Pid | None = None


class TaskRunIn(Wire):
    id: Uuid16
    flow_run_id: Uuid16 | None = None
    name: Name
    task_name: Name
    tags: Tags = []
    upstream: Upstream = {}
    created: Timestamp = 0.0
    host: Name | None = None
    pid: Pid | None = None
    moved: Moved = 0


class StateIn(Wire):
    run_id: Uuid16
    run_kind: Literal["flow", "task"]
    type: Name
    name: Name
    message: Message | None = None
    timestamp: Timestamp
    transition_id: Uuid16
    retry: StrictBool = False


class RunRefIn(Wire):
    """A run named by its full id or a unique prefix of its text form."""

    id: Annotated[StrictStr, Field(min_length=1, max_length=36)]


class RunIdIn(Wire):
    run_id: Uuid16


class ListFlowRunsIn(Wire):
    state_type: Name | None = None
    flow_name: Name | None = None
    parent_flow_run_id: Uuid16 | None = None
    limit: Limit = 100


class HeartbeatIn(Wire):
    flow_run_id: Uuid16


# Compact rows of the recorder stream (positional, no field names on the wire). Run rows end
# with where the run is (host, pid, and for a task run whether it moved there); rows without
# those (from clients before schema v4) are still taken.
_FlowRowV3 = tuple[Uuid16, Name, Name, Parameters, Uuid16 | None, Uuid16 | None, Tags, Timestamp]
_TaskRowV3 = tuple[Uuid16, Uuid16 | None, Name, Name, Tags, Upstream, Timestamp]
FlowRow = Annotated[
    tuple[Uuid16, Name, Name, Parameters, Uuid16 | None, Uuid16 | None, Tags, Timestamp,
          Name | None, Pid | None] | _FlowRowV3,
    Field(union_mode="left_to_right"),
]
TaskRow = Annotated[
    tuple[Uuid16, Uuid16 | None, Name, Name, Tags, Upstream, Timestamp, Name | None,
          Pid | None, Moved] | _TaskRowV3,
    Field(union_mode="left_to_right"),
]
StateRow = tuple[Uuid16, Literal[0, 1], Name, Name, Message | None, Timestamp, Uuid16, StrictBool]
# Log lines (`log_records.py`): a message or traceback is at most MAX_LOG_BYTES bytes (so at
# most that many characters) plus the truncation marker, cut by the recording process.
LogText = Annotated[StrictStr, Field(max_length=MAX_LOG_BYTES + MARKER_ROOM)]
Level = Annotated[int, Field(strict=True, ge=0, le=2**31 - 1)]
#: [flow_run_id, task_run_id, level, timestamp, logger, message, exception]
LogRow = tuple[Uuid16, Uuid16 | None, Level, Timestamp, Name, LogText, LogText | None]


class RecordBatchIn(Wire):
    """One recorder batch: `[seq, flows, tasks, states, heartbeats, logs?]` on the wire (a
    batch without log lines leaves `logs` out, as clients before schema v6 do)."""

    FIELDS: ClassVar[tuple[str, ...]] = ("seq", "flows", "tasks", "states", "heartbeats", "logs")

    seq: Annotated[int, Field(strict=True, ge=0)]
    flows: Annotated[list[FlowRow], Field(max_length=MAX_BATCH_ITEMS)]
    tasks: Annotated[list[TaskRow], Field(max_length=MAX_BATCH_ITEMS)]
    states: Annotated[list[StateRow], Field(max_length=MAX_BATCH_ITEMS)]
    heartbeats: Annotated[list[Uuid16], Field(max_length=MAX_BATCH_ITEMS)]
    logs: Annotated[list[LogRow], Field(max_length=MAX_BATCH_ITEMS)] = []


RunIdent = Annotated[StrictStr, Field(min_length=1, max_length=36)]
SeqNumber = Annotated[int, Field(strict=True, ge=0, le=2**63 - 1)]


class ReadLogsIn(Wire):
    """`ReadLogs`: a flow or task run by id or unique prefix; lines after `after_seq`."""

    run_id: RunIdent
    min_level: Level = 0
    task: Name | None = None
    after_seq: SeqNumber = 0
    limit: Annotated[int, Field(strict=True, ge=1, le=MAX_LIST)] = 1000
    tail: StrictBool = False


class FollowLogsIn(Wire):
    """`FollowLogs`: the same run and filters, streamed until the run ends."""

    run_id: RunIdent
    min_level: Level = 0
    task: Name | None = None
    after_seq: SeqNumber = 0


# The result cache's requests (`cache_service.py`). Keys are the hex digests cache policies
# make; a body is at most MAX_CACHE_BODY bytes, so its request fits gRPC's message limit.
MAX_CACHE_KEY = 128
#: Room left in a gRPC message for everything but the body (key, field names, framing).
_CACHE_FRAMING = 64 * 1024
MAX_CACHE_BODY = 16 * 1024 * 1024 - _CACHE_FRAMING  # codec.MAX_GRPC_MESSAGE less framing
MAX_CACHE_TTL = 7 * 86400.0
MAX_COMPONENTS = 1_000
MAX_NOTES = 10_000

CacheKey = Annotated[StrictStr, Field(min_length=1, max_length=MAX_CACHE_KEY, pattern=r"^[0-9a-fA-F]+$")]
Owner = Annotated[StrictStr, Field(min_length=1, max_length=200)]
Seconds = Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0, le=MAX_CACHE_TTL)]
Count = Annotated[int, Field(strict=True, ge=0, le=2**53)]
Components = Annotated[dict[Name, Name], Field(max_length=MAX_COMPONENTS)]


class CacheKeyIn(Wire):
    key: CacheKey


class CacheWriteIn(Wire):
    key: CacheKey
    body: Annotated[StrictBytes, Field(max_length=MAX_CACHE_BODY)]


class CacheClaimIn(Wire):
    key: CacheKey
    owner: Owner
    ttl: Seconds


class CacheReleaseIn(Wire):
    key: CacheKey
    owner: Owner


class RunNoteWire(Wire):
    """`entries.RunNote` on the wire, both ways."""

    run_id: Name
    task: Name
    key: CacheKey | None
    components: Components
    outcome: Name  # "hit", "miss", ... (see `RunNote`); not a closed set, so explain shows new ones
    reason: Message
    created: Timestamp


class CacheRecordIn(Wire):
    notes: Annotated[list[RunNoteWire], Field(max_length=MAX_NOTES)] = []
    hits: Count = 0
    misses: Count = 0


class CacheNoteIn(Wire):
    run_id: Name


class CacheEntriesIn(Wire):
    """A page of entries in key order: those after `after`, at most `limit`."""

    task: Name | None = None
    after: CacheKey | None = None
    limit: Annotated[int, Field(strict=True, ge=1, le=MAX_LIST)] = MAX_LIST


class CacheClearIn(Wire):
    task: Name | None = None
    older_than: Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0)] | None = None


class CacheEntryWire(Wire):
    """`entries.Entry` on the wire; the server also checks a written body's header with it, so
    a header that would break every later listing is refused when it is written."""

    key: CacheKey
    task: Name
    size: Count
    created: Timestamp
    expires: Timestamp | None
    components: Components
    location: Message | None
    digest: Annotated[StrictStr, Field(max_length=128)] | None


# Responses (server -> client). The client validates them too: the server is remote code.


class StateOut(Wire):
    run_id: Uuid16
    type: StrictStr
    name: StrictStr
    message: StrictStr | None
    timestamp: float
    transition_id: Uuid16


class FlowRunOut(Wire):
    id: Uuid16
    name: StrictStr
    flow_name: StrictStr
    parameters: dict[StrictStr, Any]
    parent_flow_run_id: Uuid16 | None
    parent_task_run_id: Uuid16 | None
    tags: list[StrictStr]
    created: float | None
    start_time: float | None
    end_time: float | None
    state_type: StrictStr | None
    state_name: StrictStr | None
    last_heartbeat: float | None
    task_run_count: int
    host: StrictStr | None = None  # absent from servers before schema v4
    pid: int | None = None


class TaskRunOut(Wire):
    id: Uuid16
    flow_run_id: Uuid16 | None
    name: StrictStr
    task_name: StrictStr
    tags: list[StrictStr]
    upstream: dict[StrictStr, list[Uuid16]]
    created: float | None
    start_time: float | None
    end_time: float | None
    state_type: StrictStr | None
    state_name: StrictStr | None
    host: StrictStr | None = None  # absent from servers before schema v4
    pid: int | None = None


class FlowRunsOut(Wire):
    runs: list[FlowRunOut]


class TaskRunsOut(Wire):
    runs: list[TaskRunOut]


class StatesOut(Wire):
    states: list[StateOut]


class Empty(Wire):
    pass


class SetStateOut(Wire):
    """`duplicate` is true when this transition id was already recorded (an idempotent retry)."""

    duplicate: StrictBool


class BatchAckOut(Wire):
    """`[seq, applied, [[run_id, transition_id, reason], ...]]` on the wire, and
    `[[run_id, reason], ...]` fourth when the server could not store some records."""

    seq: int
    applied: int
    rejections: list[tuple[Uuid16, Uuid16, StrictStr]]
    unstored: list[tuple[Uuid16, StrictStr]] = []


class CacheInfoOut(Wire):
    store_id: StrictStr


class CacheLookupOut(Wire):
    entry: CacheEntryWire | None


class CacheBodyOut(Wire):
    body: StrictBytes


class CacheEntriesOut(Wire):
    entries: list[CacheEntryWire]
    more: StrictBool


class CacheNoteOut(Wire):
    note: RunNoteWire | None


class CacheStatsOut(Wire):
    entries: Count
    bytes: Count
    hits: Count
    misses: Count


class FlagOut(Wire):
    ok: StrictBool


class CountOut(Wire):
    count: Count


# Concurrency slots (`slot_service.py`). Limit names are tags: short, never empty.
MAX_SLOT_NAMES = 64
MAX_SLOTS = 10**9
MAX_LEASE_SECONDS = 7 * 86400.0
LimitName = Annotated[StrictStr, Field(min_length=1, max_length=200)]
SlotId = Annotated[StrictStr, Field(min_length=1, max_length=64)]
SlotCount = Annotated[int, Field(strict=True, ge=0, le=MAX_SLOTS)]
Decay = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, le=MAX_SLOTS)]
LeaseSeconds = Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0, le=MAX_LEASE_SECONDS)]


class SlotHolderWire(Wire):
    label: Name
    task_run_id: Uuid16 | None = None
    flow_run_id: Uuid16 | None = None
    host: Name | None = None
    pid: Pid | None = None


class LimitIn(Wire):
    name: LimitName
    limit: SlotCount
    slot_decay_per_second: Decay = 0.0


class LimitNameIn(Wire):
    name: LimitName


class AcquireIn(Wire):
    request_id: SlotId
    subscriber_id: SlotId
    names: Annotated[list[LimitName], Field(min_length=1, max_length=MAX_SLOT_NAMES)]
    occupy: Annotated[int, Field(strict=True, ge=1, le=MAX_SLOTS)] = 1
    lease_seconds: LeaseSeconds
    holder: SlotHolderWire
    strict: StrictBool = False


class LeaseIdsIn(Wire):
    lease_ids: Annotated[list[SlotId], Field(max_length=MAX_LIST)]
    lease_seconds: LeaseSeconds | None = None


class RequestIdIn(Wire):
    request_id: SlotId


class SubscriberIn(Wire):
    subscriber_id: SlotId


class HolderOut(Wire):
    lease_id: StrictStr
    label: StrictStr
    task_run_id: Uuid16 | None
    flow_run_id: Uuid16 | None
    host: StrictStr | None
    pid: int | None
    occupy: int
    acquired_at: float
    expires_at: float


class LimitOut(Wire):
    name: StrictStr
    limit: int
    slot_decay_per_second: float
    active: int
    waiting: int
    holders: list[HolderOut]
    created: float


class LimitsOut(Wire):
    limits: list[LimitOut]


class GrantOut(Wire):
    lease_id: StrictStr | None
    expires_at: float | None


class AcquireOut(Wire):
    """Exactly one of `granted` (now) and `queued` (the position, from 1; the grant is pushed)."""

    granted: GrantOut | None = None
    queued: int | None = None


class RejectedOut(Wire):
    """Lease ids the server did not know, or knew as expired: nothing was changed for them."""

    rejected: list[StrictStr]


class PushedGrant(Wire):
    request_id: StrictStr
    lease_id: StrictStr | None
    expires_at: float | None


class PushedError(Wire):
    request_id: StrictStr
    message: StrictStr


class SlotPush(Wire):
    """One message of the `SlotGrants` stream: the limit names (at connect and whenever one is
    created or deleted), a grant, or a queued request refused (its limit was lowered to 0)."""

    limits: list[StrictStr] | None = None
    grant: PushedGrant | None = None
    error: PushedError | None = None


class LogLineOut(Wire):
    seq: int
    flow_run_id: Uuid16
    task_run_id: Uuid16 | None
    label: StrictStr | None
    level: int
    timestamp: float
    logger: StrictStr
    message: StrictStr
    exception: StrictStr | None


class LogsOut(Wire):
    """A page of `ReadLogs`, and each message of a `FollowLogs` stream."""

    lines: list[LogLineOut]
    next_seq: int


# -- the control channel (`control_service.py`) ------------------------------------------------

Seq = Annotated[int, Field(strict=True, ge=0, le=2**63 - 1)]


class CancelIn(Wire):
    """`CancelFlowRun`: the run (full id or unique prefix), how long its process has to stop,
    and who asks (shown in the run's history)."""

    id: Annotated[StrictStr, Field(min_length=1, max_length=36)]
    deadline_seconds: Annotated[float, Field(strict=True, gt=0, le=7 * 24 * 3600)] = CANCEL_DEADLINE
    by: Name | None = None


class CancelOut(Wire):
    flow_run_id: Uuid16
    cancelled: Annotated[list[Uuid16], Field(max_length=MAX_LIST)]
    already: StrictBool
    deadline: Timestamp


class ControlStreamIn(Wire):
    """`ControlMessages`: one process's stream; the runs it owns and the last seq it acted on."""

    subscriber_id: SlotId
    flow_run_ids: Annotated[list[Uuid16], Field(max_length=MAX_LIST)]
    after_seq: Seq = 0


class ControlWatchIn(Wire):
    """`ControlWatch`: address a flow run's messages to this process (`stop`: no longer)."""

    subscriber_id: SlotId
    flow_run_id: Uuid16
    stop: StrictBool = False


class ControlAckIn(Wire):
    seqs: Annotated[list[Seq], Field(max_length=MAX_LIST)]


class ControlMessageOut(Wire):
    """One message of the `ControlMessages` stream: the same envelope for every kind."""

    seq: Seq
    flow_run_id: Uuid16
    kind: Annotated[StrictStr, Field(max_length=64)]
    body: Annotated[dict[StrictStr, Any], AfterValidator(check_depth)]


#: A pause's input schema, or a resume's input, as JSON text (kept as text on the wire: the
#: service parses and validates it, and nested JSON need not fit msgpack's depth check).
JsonText = Annotated[StrictStr, Field(max_length=MAX_MESSAGE)]


class PauseIn(Wire):
    """`PauseFlowRun`: pause this (RUNNING) flow run until resumed or `timeout` seconds pass."""

    flow_run_id: Uuid16
    key: Annotated[StrictStr, Field(min_length=1, max_length=MAX_NAME)]
    input_schema: JsonText | None = None
    timeout: Annotated[float, Field(strict=True, gt=0, le=366 * 24 * 3600)] = 3600.0


class PauseOut(Wire):
    """The pause: its deadline, and whether it was resumed already (a key seen before), then
    with the input it was resumed with (JSON text)."""

    key: Name
    deadline: Timestamp
    resumed: StrictBool
    run_input: JsonText | None = None


class ResumeIn(Wire):
    """`ResumeFlowRun`: the paused run (full id or unique prefix), the input (JSON text; none
    for a pause that takes none) and who resumes (shown in the run's history)."""

    id: Annotated[StrictStr, Field(min_length=1, max_length=36)]
    run_input: JsonText | None = None
    by: Name | None = None


class ResumeOut(Wire):
    flow_run_id: Uuid16
    key: Name
    by: Name
    run_input: JsonText | None = None


#: Longest rejection reason: a sentence or a paragraph for the history, not a document.
MAX_REASON = 4096


class RejectIn(Wire):
    """`RejectFlowRun`: the paused run (full id or unique prefix), why it is rejected, and who
    rejects (both shown in the run's history: "rejected by NAME: REASON")."""

    id: Annotated[StrictStr, Field(min_length=1, max_length=36)]
    reason: Annotated[StrictStr, Field(max_length=MAX_REASON)] | None = None
    by: Name | None = None


class RejectOut(Wire):
    flow_run_id: Uuid16
    key: Name
    by: Name
    message: Annotated[StrictStr, Field(max_length=MAX_MESSAGE)]


class PauseInfoOut(Wire):
    """`ReadPause`: a flow run's latest pause (`found` False: it never paused)."""

    found: StrictBool
    key: Name | None = None
    input_schema: JsonText | None = None
    created: Timestamp | None = None
    deadline: Timestamp | None = None
    resolved: Timestamp | None = None
    outcome: Name | None = None
    resolved_by: Name | None = None
    run_input: JsonText | None = None
