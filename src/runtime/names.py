"""Readable generated names for flow runs ("brisk-heron"), so logs and the CLI read well."""

from __future__ import annotations

import random

_ADJECTIVES = (
    "amber", "bold", "brisk", "calm", "clever", "crimson", "daring", "eager", "fluent",
    "gentle", "golden", "hardy", "humble", "jolly", "keen", "lively", "lucid", "mellow",
    "nimble", "noble", "patient", "quick", "quiet", "rapid", "silver", "steady", "sunny",
    "swift", "tidy", "vivid", "witty", "zesty",
)  # fmt: skip
_ANIMALS = (
    "badger", "beaver", "bison", "crane", "dolphin", "falcon", "ferret", "gecko", "heron",
    "ibis", "jaguar", "kestrel", "koala", "lemur", "lynx", "marten", "narwhal", "ocelot",
    "osprey", "otter", "panda", "puffin", "quail", "raven", "salmon", "seal", "stork",
    "tapir", "trout", "walrus", "wombat", "yak",
)  # fmt: skip


def generate_run_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_ANIMALS)}"
