"""numpy and pandas values hash by content: the same data in another layout or process is the
same key, another dtype, shape, label or value is another."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd

from headwater.cache import hash_value


def test_an_array_hashes_by_dtype_shape_and_values_whatever_its_layout() -> None:
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    assert hash_value(a) == hash_value(np.asfortranarray(a)) == hash_value(a.copy())
    assert hash_value(a) != hash_value(a.astype(np.float32))
    assert hash_value(a) != hash_value(a.reshape(4, 3))
    b = a.copy()
    b[2, 3] += 1e-12
    assert hash_value(a) != hash_value(b)
    assert hash_value(a[:, ::2]) == hash_value(np.ascontiguousarray(a[:, ::2]))  # a strided view
    assert hash_value(np.float64(1.0)) != hash_value(1.0)


def test_frames_and_series_hash_by_values_labels_and_dtypes() -> None:
    frame = pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]})
    assert hash_value(frame) == hash_value(frame.copy())
    assert hash_value(frame) != hash_value(frame.rename(columns={"y": "z"}))
    assert hash_value(frame) != hash_value(frame.set_axis([10, 11, 12]))
    assert hash_value(frame) != hash_value(frame.astype({"x": "float64"}))
    changed = frame.copy()
    changed.loc[1, "y"] = "B"
    assert hash_value(frame) != hash_value(changed)
    assert hash_value(frame["x"]) != hash_value(frame["x"].rename("w"))


def test_an_array_hashes_the_same_in_another_process() -> None:
    code = "import numpy as np; from headwater.cache import hash_value; print(hash_value(np.arange(1000.0)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == hash_value(np.arange(1000.0))
