"""Hello world as a one-task headwater flow: what `coldstart` times, interpreter start included.

    python hello_headwater.py [RunnerClassName]
"""

import sys

from headwater import flow, runners, task


@task
def greet(name: str) -> str:
    return f"hello, {name}"


runner_class = getattr(runners, sys.argv[1] if len(sys.argv) > 1 else "ConcurrentTaskRunner")


@flow(task_runner=runner_class())
def hello() -> str:
    return greet.submit("world").result()


if __name__ == "__main__":
    print(hello())
