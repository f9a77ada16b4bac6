"""Result caching in the task engine: the key, the lookup, the hit, and storing what ran.

A task caches when it has a `cache_policy` or a `cache_key_fn` (or `persist_result=True`,
which caches by `DEFAULT`). For such a run, the engine (`engine.py`) asks `CacheStep` before
loading its inputs:

1. The key. An argument fed by an upstream run that has a key of its own counts by that key
   (lineage: `Lineage(key)` stands in the argument, `KeyContext.upstream_keys` names it for
   a direct one), so a downstream key is known without loading the upstream's data and a
   chain of cached runs hits end to end without moving it. When an upstream has no key, or
   the task uses a `cache_key_fn` (Prefect's contract: it sees the values), the inputs are
   loaded first and hashed by content. No key (an argument that does not hash) means the run
   is not cached: the policy warned, naming the argument.
2. The lookup, unless `refresh_cache`. A hit ends the run RUNNING -> COMPLETED("Cached")
   without calling the function; the state's message carries the key, and its data is a
   `CachedValue` handle: the value is loaded from the store only when someone asks
   (`State.result()`), in whatever process asks.
3. With single flight (`policy.configure(isolation_level="SERIALIZABLE")`), a miss claims
   the key (a lease in the store, renewed while the function runs); a call that finds it
   claimed waits for the value, or for the lease to end (the holder failed or died) and
   claims it itself.
4. After a miss, a COMPLETED value is stored under the key (`store_value`) with its
   expiry and the key's components. A value that cannot be stored (it does not pickle, the
   store is unwritable) leaves the run COMPLETED and uncached, with a warning.

Which store: `store_for(target)`. With recording off, the store under this process's
`HEADWATER_HOME`. With a state service, the service's own store, read directly when this
process shares its directory (the flow's process, its local workers) and through the
service otherwise (a worker on another machine, with its own home): a cluster sees one cache.

What the cache did for each run (key, components, hit or miss) and the hit and miss counts
are journaled off the task's path and written in batches (`journal.py`), for `headwater
cache explain` and `stats`.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..cache import DEFAULT, NONE, CachePolicy, KeyContext
from ..cache.entries import CacheValueMissing, RunNote
from ..errors import CacheStoreError
from .arguments import UpstreamRef, fill_upstream
from .journal import journal_for

if TYPE_CHECKING:
    from .engine import _TaskRunEngine

KeyFn = Callable[[KeyContext, Mapping[str, Any]], "str | None"]


class Lineage:
    """Stands for an upstream's value in the arguments a policy hashes: that run's key."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def __headwater_hash__(self) -> str:
        return f"lineage:{self.key}"

    def __repr__(self) -> str:
        return f"Lineage({self.key[:12]}...)"


class TaskCache:
    """A task's caching options, checked once at `@task` time."""

    __slots__ = ("policy", "key_fn", "expiration", "refresh", "storage", "in_memory")

    def __init__(
        self,
        policy: CachePolicy | None,
        key_fn: KeyFn | None,
        expiration: timedelta | None,
        refresh: bool,
        storage: str | None,
        in_memory: bool,
    ) -> None:
        self.policy, self.key_fn, self.expiration = policy, key_fn, expiration
        self.refresh, self.storage, self.in_memory = refresh, storage, in_memory

    @classmethod
    def from_options(
        cls,
        task_name: str,
        *,
        cache_policy: CachePolicy | None,
        cache_key_fn: KeyFn | None,
        cache_expiration: timedelta | None,
        refresh_cache: bool | None,
        persist_result: bool | None,
        result_storage: Any,
        cache_result_in_memory: bool,
    ) -> TaskCache | None:
        """The task's cache, or None when it does not cache (the common case, kept free)."""
        if cache_policy is not None and cache_key_fn is not None:
            raise ValueError(f"task {task_name!r}: give cache_policy or cache_key_fn, not both")
        if cache_policy is not None and not isinstance(cache_policy, CachePolicy):
            raise TypeError(
                f"task {task_name!r}: cache_policy must be a CachePolicy (INPUTS, TASK_SOURCE, ... "
                f"from headwater.cache), got {type(cache_policy).__name__}"
            )
        if cache_key_fn is not None and not callable(cache_key_fn):
            raise TypeError(f"task {task_name!r}: cache_key_fn must be callable, got {cache_key_fn!r}")
        if cache_expiration is not None and not isinstance(cache_expiration, timedelta):
            raise TypeError(
                f"task {task_name!r}: cache_expiration must be a datetime.timedelta, got {cache_expiration!r}"
            )
        wants_cache = cache_key_fn is not None or (cache_policy is not None and cache_policy is not NONE)
        if persist_result is False:
            if wants_cache:
                raise ValueError(
                    f"task {task_name!r}: a cache needs its results persisted; drop "
                    "persist_result=False, or the cache_policy / cache_key_fn"
                )
            return None
        if cache_policy is NONE:
            return None
        if not wants_cache and persist_result is None:
            return None
        policy = cache_policy if cache_policy is not None or cache_key_fn is not None else DEFAULT
        return cls(
            policy, cache_key_fn, cache_expiration, bool(refresh_cache), _storage_url(task_name, result_storage),
            cache_result_in_memory,
        )  # fmt: skip

    def expires(self) -> float | None:
        return None if self.expiration is None else time.time() + self.expiration.total_seconds()


def _storage_url(task_name: str, storage: Any) -> str | None:
    """`result_storage` as an fsspec URL: a URL or path as given, or a storage block's."""
    if storage is None:
        return None
    if isinstance(storage, os.PathLike):
        return str(os.fspath(storage))
    if isinstance(storage, str) and storage:
        return storage
    url = getattr(storage, "url", None) or getattr(storage, "basepath", None)
    if isinstance(url, str) and url:
        return url
    raise TypeError(
        f"task {task_name!r}: result_storage must be an fsspec URL or a path (e.g. "
        f"'s3://bucket/results' or '/shared/results'), got {storage!r}"
    )


class CachedValue:
    """A state's data when its value is in the cache: loaded on `fetch`, in any process.

    Picklable as the key and where the store is; `keep` holds the value once loaded
    (`cache_result_in_memory`)."""

    __slots__ = ("key", "task", "target", "keep", "_value", "_loaded")

    def __init__(self, key: str, task: str, target: Any, keep: bool = True) -> None:
        self.key, self.task, self.target, self.keep = key, task, target, keep
        self._value: Any = None
        self._loaded = False

    def __reduce__(self) -> tuple[Any, ...]:
        return (CachedValue, (self.key, self.task, self.target, self.keep))

    def fetch(self, timeout: float | None = None) -> Any:
        if self._loaded:
            return self._value
        value = store_for(self.target).load(self.key)
        if self.keep:
            self._value, self._loaded = value, True
        return value

    def __repr__(self) -> str:
        return f"<cached value of {self.task!r}: {self.key[:12]}...>"


# -- the step in the engine -------------------------------------------------------------------


class CacheStep:
    """What the cache does for one attempt of a cached run; the engine drives it."""

    __slots__ = ("cache", "engine", "store", "key", "components", "claim", "outcome", "reason")

    def __init__(self, cache: TaskCache, engine: _TaskRunEngine) -> None:
        self.cache, self.engine = cache, engine
        self.store: Any = None
        self.key: str | None = None
        self.components: dict[str, str] = {}
        self.claim: _Claim | None = None
        self.outcome, self.reason = "uncacheable", ""

    def answered(self) -> bool:
        """Steps 1-3: True when the run ended here: the cache answered it (COMPLETED("Cached")),
        or its key could not be made (FAILED: a strict policy met an argument that does not
        hash, or `cache_key_fn` raised). False when the function must run."""
        engine = self.engine
        try:
            if not self._compute_key():
                return engine.run.state is not None and engine.run.state.is_final()
        except Exception as exc:
            engine.key_failed(exc)
            return True
        try:
            self.store = store_for(engine.payload.services.target)
            if self.cache.refresh:
                self.outcome = "refresh"
                return False
            if self._hit():
                return True
            policy = self.cache.policy
            if policy is not None and policy.isolation_level == "SERIALIZABLE":
                return self._single_flight(policy.lock_lease_seconds)
        except CacheStoreError as exc:
            self._unusable(exc)
        return False

    def _compute_key(self) -> bool:
        engine = self.engine
        run, task = engine.run, engine.task
        upstream_keys: dict[str, str] = {}
        parameters = engine.parameters
        if engine.upstream:
            keys = [outcome.cache_key for outcome in engine.upstream]
            if self.cache.key_fn is None and all(keys):
                for name, value in parameters.items():
                    if type(value) is UpstreamRef:
                        upstream_keys[name] = keys[value.index]
                parameters = fill_upstream(parameters, tuple(Lineage(k) for k in keys))
            else:  # some upstream has no key, or the key function wants values: load them
                if not engine.load_inputs():  # the run ended FAILED: that is the answer
                    return False
                parameters = engine.parameters
        context = KeyContext(
            task_fn=task.fn, task_name=task.name, run_id=run.flow_run_id,
            flow_parameters=engine.payload.flow_parameters or {}, upstream_keys=upstream_keys,
        )  # fmt: skip
        if self.cache.key_fn is not None:
            key = self.cache.key_fn(context, parameters)
            name = getattr(self.cache.key_fn, "__qualname__", "cache_key_fn")
            self.components = {f"cache_key_fn {name}": str(key) if key is not None else "(no key)"}
        else:
            assert self.cache.policy is not None
            key, self.components = self.cache.policy.explain_key(context, parameters)
        if key is None:
            self.reason = "the key could not be computed (" + ", ".join(
                f"{k}: {v}" for k, v in self.components.items() if v.startswith("(")
            ) + ")"
            self._note()
            return False
        if not isinstance(key, str):
            raise TypeError(f"cache_key_fn of task {task.name!r} returned {type(key).__name__}, not str or None")
        self.key = key
        return True

    def _hit(self) -> bool:
        assert self.key is not None
        entry = self.store.lookup(self.key)
        if entry is None:
            return False
        engine = self.engine
        handle = CachedValue(self.key, engine.task.name, engine.payload.services.target, self.cache.in_memory)
        engine.cache_hit(handle, f"cache hit: key {self.key}")
        self.outcome = "hit"
        self._note()
        return True

    def _single_flight(self, lease: float) -> bool:
        """Claim the key, or wait for whoever holds it; True if their value arrived."""
        assert self.key is not None
        owner = f"{self.engine.run.id}:{uuid.uuid4().hex[:8]}"
        delay = 0.002
        while True:
            if self.store.claim(self.key, owner, lease):
                self.claim = _Claim(self.store, self.key, owner, lease)
                if self._hit():  # computed between our lookup and our claim
                    self.release()
                    return True
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
            if self._hit():
                return True

    def store_value(self, value: Any) -> Any:
        """Step 4, after the function returned `value` (COMPLETED): store it. Returns the
        state's data: the value, or its `CachedValue` when not kept in memory."""
        if self.key is None or self.store is None:
            return value
        engine = self.engine
        try:
            self.store.put(
                self.key, value, task=engine.task.name, expires=self.cache.expires(),
                components=self.components, storage=self.cache.storage,
            )  # fmt: skip
        except CacheStoreError as exc:
            self._unusable(exc, stored=False)
            return value
        if self.outcome != "refresh":
            self.outcome = "miss"
        self._note()
        if self.cache.in_memory:
            return value
        from .states import Detached

        return Detached(CachedValue(self.key, engine.task.name, engine.payload.services.target, False))

    def finished(self, completed: bool) -> None:
        """The attempt ended: give the claim up, and note a run that computed nothing."""
        self.release()
        if self.key is not None and not completed and self.outcome in ("uncacheable", "refresh"):
            self.outcome, self.reason = "unstored", "the run did not complete"
            self._note()

    def release(self) -> None:
        if self.claim is not None:
            self.claim.release()
            self.claim = None

    def _unusable(self, exc: BaseException, stored: bool = True) -> None:
        warnings.warn(f"task {self.engine.task.name!r} runs uncached: {exc}", CacheUnusable, stacklevel=2)
        self.outcome, self.reason = "unstored", str(exc)
        if self.store is not None:
            self._note()

    def _note(self) -> None:
        store = self.store
        if store is None:
            try:
                store = self.store = store_for(self.engine.payload.services.target)
            except CacheStoreError:
                return
        run = self.engine.run
        note = RunNote(
            str(run.id), self.engine.task.name, self.key, self.components, self.outcome, self.reason, time.time()
        )
        journal_for(store).add(note, hit=self.outcome == "hit", miss=self.outcome in ("miss", "refresh"))


class CacheUnusable(UserWarning):
    """A run was not cached or not served from the cache because the store failed."""


class _Claim:
    """A held single-flight lease, renewed by one shared thread until released."""

    __slots__ = ("store", "key", "owner", "lease", "__weakref__")

    def __init__(self, store: Any, key: str, owner: str, lease: float) -> None:
        self.store, self.key, self.owner, self.lease = store, key, owner, lease
        _renewer.hold(self)

    def release(self) -> None:
        _renewer.drop(self)
        try:
            self.store.release(self.key, self.owner)
        except Exception:  # the lease ends by itself
            pass


class _Renewer:
    def __init__(self) -> None:
        self._held: set[_Claim] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def hold(self, claim: _Claim) -> None:
        with self._lock:
            self._held.add(claim)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="headwater-cache-claims", daemon=True)
                self._thread.start()

    def drop(self, claim: _Claim) -> None:
        with self._lock:
            self._held.discard(claim)

    def _loop(self) -> None:
        while True:
            with self._lock:
                held = list(self._held)
            if not held:
                time.sleep(0.05)
                continue
            for claim in held:
                try:
                    claim.store.renew(claim.key, claim.owner, claim.lease)
                except Exception:
                    pass
            time.sleep(min(claim.lease for claim in held) / 3)


_renewer = _Renewer()


# -- which store ------------------------------------------------------------------------------

_stores: dict[tuple[Any, ...], Any] = {}
_stores_lock = threading.Lock()


def store_for(target: Any) -> Any:
    """The cache store for runs recording to `target` (None: recording is off), in this
    process: a `LocalStore` on this home's cache, or a `RemoteStore` through the service."""
    memo = (target, os.environ.get("HEADWATER_HOME"), os.getpid())
    store = _stores.get(memo)
    if store is not None:
        return store
    with _stores_lock:
        store = _stores.get(memo)
        if store is None:
            store = _stores[memo] = _open_store(target)
    return store


def _open_store(target: Any) -> Any:
    from ..api import get_settings
    from ..cache.store import LocalStore, read_store_id

    settings = get_settings()
    home = settings.home.expanduser()
    directory, key_file = home / "cache", home / "cache.key"
    if target is None:
        return LocalStore(directory, key_file, size_limit=settings.cache_size_limit_bytes)
    from pathlib import Path

    from ..api import embedded_server, recorder_target

    server = embedded_server()
    if server is not None and recorder_target() == target:  # the service runs in this process
        return LocalStore(server.home / "cache", server.home / "cache.key", size_limit=settings.cache_size_limit_bytes)
    from ..api import RemoteStore

    url, token, tls_ca = target
    remote = RemoteStore(url, token=token, tls_ca=Path(tls_ca) if tls_ca else None)
    if read_store_id(directory) == remote.store_id:  # this process shares the service's store
        remote.close()
        return LocalStore(directory, key_file, size_limit=settings.cache_size_limit_bytes)
    return remote


__all__ = ["CacheStep", "CacheValueMissing", "CachedValue", "Lineage", "TaskCache", "store_for"]
