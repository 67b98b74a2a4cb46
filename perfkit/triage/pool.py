"""A small bounded pool of daemon worker threads with deadlines.

Unlike ``concurrent.futures`` its threads are daemons: a job still running when the
triage budget ends (a py-spy call against a wedged process) is abandoned, never
joined, so it cannot hold perfkit past its budget.  Each job's own subprocess calls
carry their own timeouts, so nothing abandoned runs for long.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Job:
    key: str
    fn: Callable[[], Any]
    result: Any = None
    error: BaseException | None = None
    started: float | None = None
    finished: float | None = None
    cancelled: bool = False
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def state(self) -> str:
        if self.done.is_set():
            return "error" if self.error is not None else "ok"
        if self.cancelled and self.started is None:
            return "skipped"
        return "running" if self.started is not None else "queued"

    @property
    def seconds(self) -> float | None:
        if self.started is None:
            return None
        return round((self.finished or time.monotonic()) - self.started, 3)


class BoundedPool:
    def __init__(self, workers: int) -> None:
        self._q: queue.Queue[Job | None] = queue.Queue()
        self._threads = [threading.Thread(target=self._run, name=f"perfkit-triage-{i}", daemon=True)
                         for i in range(max(1, workers))]
        for t in self._threads:
            t.start()

    def submit(self, key: str, fn: Callable[[], Any]) -> Job:
        job = Job(key, fn)
        self._q.put(job)
        return job

    def _run(self) -> None:
        while True:
            job = self._q.get()
            if job is None:
                return
            if job.cancelled:  # never started: stays "skipped"
                continue
            job.started = time.monotonic()
            try:
                job.result = job.fn()
            except BaseException as exc:  # noqa: BLE001 - recorded, never propagated to the pool
                job.error = exc
            finally:
                job.finished = time.monotonic()
                job.done.set()

    @staticmethod
    def wait(jobs: list[Job], deadline: float, poll: Callable[[], None] | None = None) -> bool:
        """Wait until every job is done or ``deadline`` (monotonic) passes; True if all done."""
        while True:
            pending = [j for j in jobs if not j.done.is_set() and not (j.cancelled and j.started is None)]
            if not pending:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            pending[0].done.wait(min(left, 0.1))
            if poll:
                poll()

    @staticmethod
    def cancel_unstarted(jobs: list[Job]) -> None:
        for j in jobs:
            if j.started is None:
                j.cancelled = True

    def close(self) -> None:
        for _ in self._threads:
            self._q.put(None)
