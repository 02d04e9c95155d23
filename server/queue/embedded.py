"""The in-process queue of ``pixline serve`` when no broker is configured: the embedded default.

A bounded :class:`queue.Queue` and a few threads running the same job handler as ``pixline worker``,
so one machine needs nothing but the server. What it gives up compared to RabbitMQ: jobs live in
memory only (a restart forgets queued ones; their recipes render on the first request instead), and a
dead letter is a log line and a metric rather than a stored message.
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import TYPE_CHECKING

from ..settings import Settings
from .handler import JobHandler, RetryPolicy, run_job
from .jobs import Job
from .ready import JobEvents

if TYPE_CHECKING:
    from pixline.engine.derivatives import Derivatives

log = logging.getLogger(__name__)


class EmbeddedQueueFull(Exception):
    """The in-process queue is at its bound; the job's recipes render on demand instead."""


class EmbeddedJobQueue:
    """A :class:`~pixline.server.queue.jobs.JobPublisher` that renders jobs on its own threads."""

    def __init__(self, handler: JobHandler, threads: int = 2, maxsize: int = 1000,
                 policy: RetryPolicy = RetryPolicy(), shutdown_grace: float = 30.0) -> None:
        self.handler = handler
        self.policy = policy
        self.shutdown_grace = shutdown_grace
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=max(1, maxsize))
        self._closed = threading.Event()
        self._retry_timers: set[threading.Timer] = set()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, name=f"pixline-embedded-job-{n}", daemon=True)
                         for n in range(max(1, threads))]
        for thread in self._threads:
            thread.start()

    @classmethod
    def from_settings(cls, settings: Settings, derivatives: "Derivatives",
                      events: JobEvents | None = None) -> "EmbeddedJobQueue":
        return cls(JobHandler.from_settings(derivatives, settings, events), threads=settings.worker_concurrency,
                   maxsize=settings.queue_size,
                   policy=RetryPolicy.from_settings(settings),
                   shutdown_grace=settings.worker_shutdown_grace)

    def publish(self, job: Job) -> None:
        """Queue ``job`` without waiting; raises :class:`EmbeddedQueueFull` at the bound."""
        if self._closed.is_set():
            raise EmbeddedQueueFull("the in-process queue is closed")
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            raise EmbeddedQueueFull(f"the in-process queue holds {self._jobs.maxsize} jobs") from None

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every queued job (retries included) is finished; False on timeout (tests)."""
        done = threading.Event()

        def wait() -> None:
            self._jobs.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)

    def close(self) -> None:
        """Stop: jobs being rendered finish (up to the grace), queued ones are dropped (and logged)."""
        self._closed.set()
        with self._lock:
            for timer in self._retry_timers:
                timer.cancel()
                self._jobs.task_done()  # the retry it stood for will not happen
            self._retry_timers.clear()
        dropped = 0
        while True:
            try:
                self._jobs.get_nowait()
            except queue.Empty:
                break
            self._jobs.task_done()
            dropped += 1
        if dropped:
            log.warning("in-process queue closed with %d job(s) not started; they render on demand",
                        dropped)
        for _ in self._threads:
            try:
                self._jobs.put_nowait(None)  # one stop marker per thread
            except queue.Full:
                break
        for thread in self._threads:
            thread.join(self.shutdown_grace / len(self._threads))

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                outcome = run_job(self.handler, self.policy, job)
                if outcome.action == "retry" and outcome.job is not None:
                    self._retry_later(outcome.job.next_attempt(), outcome.delay)
            except Exception:  # never let one job end a queue thread
                log.exception("in-process job failed unexpectedly")
            finally:
                self._jobs.task_done()

    def _retry_later(self, job: Job, delay: float) -> None:
        if self._closed.is_set():
            return
        # The pending retry counts as unfinished work, so join() waits for it too.
        with self._jobs.mutex:
            self._jobs.unfinished_tasks += 1

        def requeue() -> None:
            with self._lock:
                if timer not in self._retry_timers:
                    return  # close() cancelled it and settled its count
                self._retry_timers.discard(timer)
            try:
                if not self._closed.is_set():
                    self.publish(job)
            except EmbeddedQueueFull:
                log.warning("in-process queue full: dropping retry of image %s", job.image_id)
            finally:
                self._jobs.task_done()

        timer = threading.Timer(delay, requeue)
        timer.daemon = True
        with self._lock:
            self._retry_timers.add(timer)
        timer.start()
