"""A small nightly pipeline: load a few days in parallel, retry a flaky source, aggregate.

Run it with `python examples/quickstart.py`.
"""

from __future__ import annotations

import random

from headwater import flow, get_run_logger, task
from headwater.runners import ConcurrentTaskRunner


@task(retries=3, retry_delay_seconds=[0.1, 0.2, 0.4], tags=["warehouse"])
def load(day: str) -> list[dict[str, float]]:
    """Pretend to read one day of orders from a flaky warehouse."""
    if random.random() < 0.3:
        raise ConnectionError(f"warehouse busy while loading {day}")
    rng = random.Random(day)
    return [{"amount": round(rng.uniform(5, 500), 2)} for _ in range(rng.randint(50, 100))]


@task
def revenue(rows: list[dict[str, float]]) -> float:
    return round(sum(row["amount"] for row in rows), 2)


@flow(task_runner=ConcurrentTaskRunner(), log_prints=True)
def nightly(days: list[str]) -> float:
    totals = revenue.map(load.map(days))  # futures in, futures out
    per_day = dict(zip(days, totals.result()))
    for day, total in per_day.items():
        print(f"{day}: {total:>10,.2f}")
    grand_total = round(sum(per_day.values()), 2)
    get_run_logger().info("grand total %s over %d days", f"{grand_total:,.2f}", len(days))
    return grand_total


if __name__ == "__main__":
    days = [f"2026-11-{day:02d}" for day in range(1, 8)]
    print(f"revenue for the week: {nightly(days):,.2f}")
