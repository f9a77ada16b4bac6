"""headwater.cache: cache keys that are right.

`hash_value` turns a value into a stable content hash (`hashing`); cache policies
(`policies`) say what a task run's key is made of and compose with `+` and `-`:

    from headwater.cache import INPUTS, TASK_SOURCE

    policy = TASK_SOURCE + INPUTS - "client"
    key = policy.compute_key(KeyContext(task_fn=fn, task_name="load"), {"path": "a.csv"})

`store.LocalStore` keeps values on this machine, signed (see its module); the state service
serves one to a whole cluster; `explain.explain` says why a run hit or missed. Tasks use all
this through their options (`cache_policy=...`, see `headwater.runtime.caching`). The package
imports nothing of ours but `headwater.errors`.
"""

from ..errors import UnhashableInput as UnhashableInput
from .hashing import hash_value as hash_value
from .policies import DEFAULT as DEFAULT
from .policies import FLOW_PARAMETERS as FLOW_PARAMETERS
from .policies import INPUTS as INPUTS
from .policies import NONE as NONE
from .policies import RUN_ID as RUN_ID
from .policies import TASK_SOURCE as TASK_SOURCE
from .policies import CachePolicy as CachePolicy
from .policies import CompoundPolicy as CompoundPolicy
from .policies import KeyContext as KeyContext
from .policies import UncacheableCall as UncacheableCall
from .policies import task_input_hash as task_input_hash

__all__ = [
    "DEFAULT", "FLOW_PARAMETERS", "INPUTS", "NONE", "RUN_ID", "TASK_SOURCE", "CachePolicy",
    "CompoundPolicy", "KeyContext", "UncacheableCall", "UnhashableInput", "hash_value",
    "task_input_hash",
]  # fmt: skip
