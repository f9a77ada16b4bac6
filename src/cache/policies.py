"""Cache policies: what a task run's cache key is made of, composed with `+` and `-`.

    INPUTS                  the call's arguments (an upstream future counts by its run's key)
    TASK_SOURCE             what the function computes: source, bytecode, closure, globals
    FLOW_PARAMETERS         the parameters of the flow run the task runs in
    RUN_ID                  the flow run's id: a cache that lives for one run
    NONE                    no key: the call is never cached
    INPUTS + TASK_SOURCE    both; `task_input_hash` is this
    INPUTS - "client"       the arguments except `client`

A policy computes `compute_key(context, parameters) -> str | None`; None means "do not cache
this call". A compound policy (`a + b`) is None as soon as any part is None: a part that
cannot say what it depends on (an argument that does not hash) must not be dropped, or the
other parts alone would give a partial key and a wrong hit. So `NONE + X` is NONE (unlike
Prefect, where NONE is the identity of `+`): NONE says "never cache", and adding to it does
not change that.

Lineage: `KeyContext.upstream_keys` maps a parameter to the cache key of the upstream run
whose future was passed for it. INPUTS then hashes that key, never the value, so a
downstream key is known before the upstream's data is loaded and a chain of cached tasks hits
end to end without moving the data. An upstream without a key (it was not cacheable) is
left out of `upstream_keys`, and its value is hashed like any argument.

An argument that cannot be hashed makes the call uncacheable: `compute_key` returns None and
warns `UncacheableCall`, naming the argument, the path inside it and its type. A policy made
with `strict=True` (or `policy.strict()`) raises `UnhashableInput` instead.
"""

from __future__ import annotations

import dataclasses
import types
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from ..errors import UnhashableInput
from .hashing import hash_value


class UncacheableCall(UserWarning):
    """A call was not cached because a value it depends on cannot be hashed."""


@dataclass(frozen=True, slots=True)
class KeyContext:
    """What a policy may look at besides the arguments. The engine builds one per call."""

    task_fn: Callable[..., Any]
    task_name: str
    run_id: UUID | str | None = None  # the flow run's id
    flow_parameters: Mapping[str, Any] = field(default_factory=dict)
    upstream_keys: Mapping[str, str] = field(default_factory=dict)


class CachePolicy:
    """Base of every policy: subclass it and define `compute_key` to write your own."""

    __slots__ = ()

    #: "SERIALIZABLE": identical concurrent calls, in any process of the cluster, compute once
    #: and the others wait for that value (single flight); set with `configure`.
    isolation_level: str = "READ_COMMITTED"
    #: how long a computing call holds its claim on the key without renewing it (seconds)
    lock_lease_seconds: float = 30.0

    def compute_key(self, context: KeyContext, parameters: Mapping[str, Any]) -> str | None:
        raise NotImplementedError

    def explain_key(self, context: KeyContext, parameters: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
        """The key and what it is made of (component name -> digest), for `headwater cache
        explain`. A policy of your own is one component, named after its class."""
        key = self.compute_key(context, parameters)
        return key, {type(self).__name__: key if key is not None else "(no key)"}

    def configure(self, *, isolation_level: str | None = None, lock_lease_seconds: float | None = None) -> CachePolicy:
        """This policy with single flight on (`isolation_level="SERIALIZABLE"`, as Prefect
        spells it) or off ("READ_COMMITTED"), and the lease a computing call holds."""
        level = isolation_level or self.isolation_level
        if level not in ("READ_COMMITTED", "SERIALIZABLE"):
            raise ValueError(f"isolation_level must be 'READ_COMMITTED' or 'SERIALIZABLE', not {level!r}")
        lease = self.lock_lease_seconds if lock_lease_seconds is None else lock_lease_seconds
        if lease <= 0:
            raise ValueError(f"lock_lease_seconds must be positive, got {lease}")
        inner = self.inner if isinstance(self, Isolated) else self
        if level == "READ_COMMITTED":
            return inner
        return Isolated(inner, lease)

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        return CompoundPolicy.of(self, other)

    def __sub__(self, name: str) -> CachePolicy:
        raise TypeError(f"{self!r} takes no inputs, so there is no {name!r} to leave out")

    def strict(self, strict: bool = True) -> CachePolicy:
        """This policy, raising `UnhashableInput` (not warning) when a value does not hash."""
        return self


def _hash_or_none(value: object, where: str, context: KeyContext, strict: bool) -> str | None:
    """`hash_value(value)`, or None with a warning (strict: an error) naming `where`."""
    try:
        return hash_value(value)
    except UnhashableInput as exc:
        error = UnhashableInput(where, exc.path, exc.type_name, exc.reason)
        if strict:
            raise error from exc
        warnings.warn(
            f"task {context.task_name!r} is not cached for this call: {error}",
            UncacheableCall,
            stacklevel=3,
        )
        return None


@dataclass(frozen=True, slots=True)
class Inputs(CachePolicy):
    """The call's arguments by content; an upstream future's argument by its run's key."""

    exclude: frozenset[str] = frozenset()
    is_strict: bool = False

    def compute_key(self, context: KeyContext, parameters: Mapping[str, Any]) -> str | None:
        return self.explain_key(context, parameters)[0]

    def explain_key(self, context: KeyContext, parameters: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
        tokens: dict[str, tuple[str, str]] = {}
        components: dict[str, str] = {}
        for name in sorted(set(parameters) | set(context.upstream_keys)):
            if name in self.exclude:
                continue
            upstream = context.upstream_keys.get(name)
            if upstream is not None:
                tokens[name] = ("lineage", upstream)
                components[f"argument {name!r}"] = f"upstream key {upstream}"
                continue
            digest = _hash_or_none(parameters[name], f"argument {name!r}", context, self.is_strict)
            if digest is None:
                components[f"argument {name!r}"] = "(does not hash)"
                return None, components
            tokens[name] = ("value", digest)
            components[f"argument {name!r}"] = digest
        return hash_value(("inputs", tokens)), components

    def __sub__(self, name: str | Iterable[str]) -> Inputs:
        names = {name} if isinstance(name, str) else set(name)
        return dataclasses.replace(self, exclude=self.exclude | names)

    def strict(self, strict: bool = True) -> Inputs:
        return dataclasses.replace(self, is_strict=strict)


@dataclass(frozen=True, slots=True)
class TaskSource(CachePolicy):
    """The task function's identity (see `hashing`: source, bytecode, defaults, closure
    values, referenced globals). Two functions with one source and different closures
    differ; editing the code changes it. A closure value that does not hash makes the call
    uncacheable; a global that does not hash counts by its type."""

    is_strict: bool = False

    def explain_key(self, context: KeyContext, parameters: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
        key = self.compute_key(context, parameters)
        return key, {'task source': key if key is not None else "(no key)"}

    def compute_key(self, context: KeyContext, parameters: Mapping[str, Any]) -> str | None:
        fn = context.task_fn
        if isinstance(fn, types.FunctionType):
            where = f"the function {fn.__qualname__!r}"
        else:
            where = f"the callable {fn!r:.60}"
        digest = _hash_or_none(fn, where, context, self.is_strict)
        return None if digest is None else hash_value(("task-source", digest))

    def strict(self, strict: bool = True) -> TaskSource:
        return dataclasses.replace(self, is_strict=strict)


@dataclass(frozen=True, slots=True)
class FlowParameters(CachePolicy):
    """The parameters of the flow run, by content."""

    is_strict: bool = False

    def explain_key(self, context: KeyContext, parameters: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
        key = self.compute_key(context, parameters)
        return key, {'flow parameters': key if key is not None else "(no key)"}

    def compute_key(self, context: KeyContext, parameters: Mapping[str, Any]) -> str | None:
        params = dict(context.flow_parameters)
        digest = _hash_or_none(params, "the flow parameters", context, self.is_strict)
        return None if digest is None else hash_value(("flow-parameters", digest))

    def strict(self, strict: bool = True) -> FlowParameters:
        return dataclasses.replace(self, is_strict=strict)


@dataclass(frozen=True, slots=True)
class RunId(CachePolicy):
    """The flow run's id: results are reused within one flow run only. None outside a run."""

    def explain_key(self, context: KeyContext, parameters: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
        key = self.compute_key(context, parameters)
        return key, {'flow run id': key if key is not None else "(no key)"}

    def compute_key(self, context: KeyContext, parameters: Mapping[str, Any]) -> str | None:
        if context.run_id is None:
            return None
        return hash_value(("run-id", str(context.run_id)))


@dataclass(frozen=True, slots=True)
class NoCache(CachePolicy):
    """Never cache: the key is always None, and adding to it keeps it so."""

    def compute_key(self, context: KeyContext, parameters: Mapping[str, Any]) -> str | None:
        return None

    def explain_key(self, context: KeyContext, parameters: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
        return None, {"policy": "NONE (never cached)"}


@dataclass(frozen=True, slots=True)
class CompoundPolicy(CachePolicy):
    """Several policies at once: None if any part is None, else a hash of every part's key."""

    policies: tuple[CachePolicy, ...]

    @classmethod
    def of(cls, *policies: CachePolicy) -> CachePolicy:
        flat: list[CachePolicy] = []
        lease = None  # a part with single flight makes the whole single flight
        for policy in policies:
            if isinstance(policy, Isolated):
                lease, policy = max(lease or 0.0, policy.lock_lease_seconds), policy.inner
            if isinstance(policy, NoCache):
                return policy
            parts = policy.policies if isinstance(policy, CompoundPolicy) else (policy,)
            flat.extend(p for p in parts if p not in flat)
        joined = flat[0] if len(flat) == 1 else cls(tuple(flat))
        return joined if lease is None else Isolated(joined, lease)

    def compute_key(self, context: KeyContext, parameters: Mapping[str, Any]) -> str | None:
        keys = []
        for policy in self.policies:
            key = policy.compute_key(context, parameters)
            if key is None:
                return None
            keys.append(key)
        return hash_value(("compound", keys))

    def explain_key(self, context: KeyContext, parameters: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
        keys: list[str] = []
        components: dict[str, str] = {}
        for policy in self.policies:
            key, parts = policy.explain_key(context, parameters)
            components.update(parts)
            if key is None:
                return None, components
            keys.append(key)
        return hash_value(("compound", keys)), components

    def __sub__(self, name: str | Iterable[str]) -> CachePolicy:
        if not any(isinstance(p, Inputs) for p in self.policies):
            return CachePolicy.__sub__(self, str(name))
        parts = (p - name if isinstance(p, Inputs) else p for p in self.policies)
        return CompoundPolicy.of(*parts)

    def strict(self, strict: bool = True) -> CachePolicy:
        return CompoundPolicy.of(*(p.strict(strict) for p in self.policies))


@dataclass(frozen=True, slots=True)
class Isolated(CachePolicy):
    """A policy with single flight on (`policy.configure(isolation_level="SERIALIZABLE")`):
    the key is the inner policy's; the engine lets one call compute it at a time."""

    inner: CachePolicy
    lock_lease_seconds: float = 30.0
    isolation_level: str = "SERIALIZABLE"

    def compute_key(self, context: KeyContext, parameters: Mapping[str, Any]) -> str | None:
        return self.inner.compute_key(context, parameters)

    def explain_key(self, context: KeyContext, parameters: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
        return self.inner.explain_key(context, parameters)

    def __sub__(self, name: str | Iterable[str]) -> CachePolicy:
        return Isolated(self.inner - name, self.lock_lease_seconds)  # type: ignore[operator]

    def strict(self, strict: bool = True) -> CachePolicy:
        return Isolated(self.inner.strict(strict), self.lock_lease_seconds)


INPUTS = Inputs()
TASK_SOURCE = TaskSource()
FLOW_PARAMETERS = FlowParameters()
RUN_ID = RunId()
NONE = NoCache()


def task_input_hash(context: KeyContext, parameters: Mapping[str, Any]) -> str | None:
    """A `cache_key_fn` as Prefect's: the task's identity and its inputs
    (`(TASK_SOURCE + INPUTS).compute_key`)."""
    return _TASK_INPUT_HASH.compute_key(context, parameters)


_TASK_INPUT_HASH = TASK_SOURCE + INPUTS
#: what a task with `persist_result=True` and no policy of its own is cached by, as in
#: Prefect: its code, its inputs, and the flow run (so only that run's retries reuse it)
DEFAULT = TASK_SOURCE + INPUTS + RUN_ID
