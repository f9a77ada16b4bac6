"""`tags(...)`: tags for every flow run and task run created inside a block, as Prefect's.

The tags in effect live in a contextvar and are read once, when a run is created: by
`Task._prepare` (a call, `.submit`, `.map`) and by the flow engine, in the caller's context.
So a run carries them on any runner (they are part of the `TaskRun` that travels), and a
task's code on a worker thread still sees the block it was submitted from (the thread runner
runs each call in a copy of the submitter's context). A run's tags never change afterwards:
leaving the block does not untag runs made inside it.

Task runs get their task's own tags (`@task(tags=...)`) first, then those in effect, each
once. Tags name concurrency limits too (`slots.py`), so a block can put a limit on every task
run inside it.

The module is not called `tags.py` on purpose: a submodule named like the function the package
exports would shadow it the moment anything imported the submodule.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_in_effect: ContextVar[tuple[str, ...]] = ContextVar("headwater_tags", default=())


@contextmanager
def tags(*new_tags: str) -> Iterator[frozenset[str]]:
    """Add `new_tags` to every flow run and task run created inside the block.

    Blocks nest: an inner block adds to the tags of the outer ones, and leaving it restores
    them. Yields the tags in effect inside the block (a set, as Prefect's does)::

        with tags("nightly"), tags("warehouse") as current:
            assert current == {"nightly", "warehouse"}
            etl()  # the flow run and each of its task runs carry both
    """
    for tag in new_tags:
        if not isinstance(tag, str):
            raise TypeError(
                f"tags() takes each tag as its own argument, as tags('a', 'b'); got {tag!r} "
                f"({type(tag).__name__})"
            )
    token = _in_effect.set(_merged(_in_effect.get(), new_tags))
    try:
        yield frozenset(_in_effect.get())
    finally:
        _in_effect.reset(token)


def tags_in_effect() -> tuple[str, ...]:
    """The tags of the `tags()` blocks around this point, outermost first."""
    return _in_effect.get()


def with_tags_in_effect(own: tuple[str, ...]) -> tuple[str, ...]:
    """A new run's tags: its own, then those in effect here, each once. Task creation calls
    this for every run, so the usual case (no block) costs one contextvar read."""
    extra = _in_effect.get()
    if not extra:
        return own
    return _merged(own, extra) if own else extra


def _merged(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*first, *second)))
