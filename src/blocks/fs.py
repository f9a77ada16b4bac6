"""Reading and writing one file through fsspec, for the filesystem blocks.

Written as `src/cache/entries.py` writes a `result_storage` value (parents made, a temporary
name moved into place, so a reader never sees half a file), with errors of its own: the
cache's say "result_storage" and point at the cache. fsspec is imported on first use.
"""

from __future__ import annotations

import time
from typing import Any


def read_url(url: str, options: dict[str, Any]) -> bytes:
    import fsspec

    fs, path = fsspec.core.url_to_fs(url, **options)
    with fs.open(path, "rb") as file:
        content: bytes = file.read()
    return content


def write_url(url: str, content: bytes, options: dict[str, Any]) -> None:
    import fsspec

    fs, path = fsspec.core.url_to_fs(url, **options)
    parent = path.rsplit("/", 1)[0]
    if parent:
        fs.makedirs(parent, exist_ok=True)
    partial = f"{path}.{time.time_ns()}.partial"
    with fs.open(partial, "wb") as file:
        file.write(content)
    fs.mv(partial, path)
