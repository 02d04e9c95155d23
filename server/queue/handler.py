"""The job handler: render a job's recipes for one stored image, decoding the original once.

Both queues run this same handler: the RabbitMQ consumer of ``pixline worker`` (queue/consumer.py) and
the in-process queue of ``pixline serve`` (queue/embedded.py). It renders through
:class:`~pixline.engine.derivatives.Derivatives`, the code path of on-demand renders, so a derivative
made ahead of time is the same object the first request would have made.

Failures come in two kinds, and the queues treat them differently:

* :class:`PoisonJobError` — retrying cannot help (a malformed message, an unknown image or recipe, an
  original that does not decode, a step failing on this image, an output over the size limits, a
  job that ran out of time). The job is dead-lettered at once — after its other recipes are stored
  when only some recipes fail — with a reason naming each failed recipe and step.
* anything else (the store is unreachable, a network error) is *transient*: retried after a delay, a
  bounded number of times, then dead-lettered.

Before a job is settled, :class:`~pixline.server.queue.ready.JobEvents` records what its end means for
the image (its failed recipes; its ready events, when destinations are set): docs/architecture.md,
"Event delivery".
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import pyvips
from prometheus_client import Counter, Histogram

from pixline.engine.deadline import Deadline
from pixline.engine.derivatives import Derivative, Derivatives
from pixline.engine.errors import (ImageDeletedError, InputError, NotFoundError, OutputTooLargeError,
                                   PixlineError, RenderTimeoutError, StepError, StoreUnavailableError)
from pixline.engine.memory import release
from pixline.engine.recipe import Recipe
from pixline.engine.source import Source
from pixline.engine.storage import check_id

from ..settings import Settings, available_cpus
from .fanout import side_by_side
from .jobs import Job
from .ready import JobEvents

log = logging.getLogger(__name__)

#: One line per job attempt: image, recipes, outcome, attempt, duration (docs/architecture.md, "Logs").
JOB_LOG = logging.getLogger("pixline.jobs")

DERIVATIVES_RENDERED = Counter(
    "pixline_job_derivatives_rendered", "Derivatives rendered and stored by the job handler",
    ["recipe"])
DERIVATIVES_SKIPPED = Counter(
    "pixline_job_derivatives_skipped", "Derivatives a job found already stored", ["recipe"])
JOBS_PROCESSED = Counter("pixline_jobs_processed", "Jobs completed, by recipe", ["recipe"])
JOBS_FAILED = Counter("pixline_jobs_failed", "Job attempts that failed, by recipe and kind",
                      ["recipe", "kind"])
JOBS_RETRIED = Counter("pixline_jobs_retried", "Jobs sent back for a delayed retry", ["recipe"])
JOBS_DEAD_LETTERED = Counter("pixline_jobs_dead_lettered", "Jobs given up on", ["recipe"])
RENDER_SECONDS = Histogram("pixline_job_render_seconds", "Seconds to render and store one derivative",
                           ["recipe"])
DECODE_SECONDS = Histogram("pixline_job_decode_seconds", "Seconds to decode an original for a job")


class PoisonJobError(PixlineError):
    """A job that can never succeed: dead-letter it without retrying. ``failed``: the recipes that
    failed and why, when only some did (empty: the whole job, every recipe alike)."""

    title = "poison job"

    def __init__(self, message: str, failed: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.failed = failed or {}


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried: ``retries`` times, after ``first_delay`` seconds doubling."""

    retries: int = 3
    first_delay: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "RetryPolicy":
        """``--job-retries`` and ``--job-retry-delay``."""
        return cls(retries=settings.job_retries, first_delay=settings.job_retry_delay)

    @property
    def delays(self) -> list[float]:
        """The delay before each retry, in order (attempt 0 fails → ``delays[0]``…)."""
        return [self.first_delay * 2 ** n for n in range(self.retries)]

    def delay_for(self, job: Job) -> float | None:
        """Seconds to wait before retrying ``job`` after a transient failure; ``None``: give up."""
        return self.delays[job.attempt] if job.attempt < self.retries else None


@dataclass
class JobReport:
    """What a job did: which outputs it rendered, which it found already stored (by key), and
    which recipes failed."""

    image_id: str
    rendered: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: Recipes that cannot be rendered for this image, with why (the error names recipe and step).
    failed: dict[str, str] = field(default_factory=dict)


def count_failure(job: Job, kind: str) -> None:
    for name in job.recipes:
        JOBS_FAILED.labels(name, kind).inc()


def count_outcome(counter: Counter, job: Job) -> None:
    for name in job.recipes:
        counter.labels(name).inc()


def decode_size(recipes: list[Recipe], width: int, height: int) -> tuple[int, int] | None:
    """The size to decode a ``width``×``height`` original at so every recipe has what it needs.

    Each first step says what it needs (``shrink_hint``); the largest scale wins. ``None``: full
    size (some recipe needs it, or none would shrink).
    """
    scale = 0.0
    for recipe in recipes:
        hint = recipe.shrink_hint(width, height)
        if hint is None:
            return None
        scale = max(scale, hint[0] / width, hint[1] / height)
    if scale <= 0 or scale >= 1:
        return None
    return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))


def decode_once(source: Source, recipes: list[Recipe], deadline: Deadline | None = None) -> pyvips.Image:
    """The original, normalised, in memory, at the smallest size every recipe can start from.

    Shrink-on-load (libvips ``thumbnail``) when the recipes allow it; ``copy_memory`` so that several
    pipelines can read it (a lazy, sequentially-read image can be read only once). Past ``deadline``
    libvips is told to stop, and the job is poison: the same decode would run out of time again.
    """
    deadline = deadline or Deadline()
    width, height = source.size
    size = decode_size(recipes, width, height)
    deadline.check("before decoding")
    with DECODE_SECONDS.time():
        if size is None:
            image = source.load()
        else:
            # thumbnail fits inside the box: ceil() above keeps both sides at least as large as needed.
            # Source.thumbnail applies an embedded profile, as the resize step's shrink-on-load does.
            image = source.thumbnail(size[0], height=size[1], size="down")
        try:
            return deadline.copy_memory(image)
        except pyvips.Error as err:
            if deadline.killed:
                raise PoisonJobError(f"{source.name}: {deadline.exceeded('while decoding')}") from None
            raise PoisonJobError(f"{source.name}: cannot decode image: {err}") from None


class JobHandler:
    """Renders jobs: looks up recipes and metadata, skips what is stored, decodes once, fans out.

    ``time_limit``: seconds a whole job (the decode and every render) may compute; ``render_time_limit``
    narrows each render. ``None``: no limit. ``output_threads``: a job's recipes render side by side
    from its one decode (one thread per core by default).
    """

    def __init__(self, derivatives: Derivatives, time_limit: float | None = None,
                 render_time_limit: float | None = None, output_threads: int | None = None,
                 events: JobEvents | None = None) -> None:
        self.derivatives = derivatives
        self.events = events or JobEvents(derivatives)  # failed recipes kept, events sent if configured
        self.time_limit = time_limit
        self.render_time_limit = render_time_limit
        # A job's outputs render side by side from its one decode (one per core): an upload's
        # presets are ready about when its largest is, not after the sum of them all.
        self.output_threads = max(1, output_threads or available_cpus())

    @classmethod
    def from_settings(cls, derivatives: Derivatives, settings: Settings,
                      events: JobEvents | None = None) -> "JobHandler":
        """``--job-timeout`` for the job, ``--render-timeout`` for each render (0: no limit)."""
        return cls(derivatives, settings.job_timeout or None, settings.render_timeout or None, events=events)

    def handle(self, job: Job) -> JobReport:
        """Render and store every output of ``job`` not stored yet.

        Raises :class:`PoisonJobError` for a job that can never succeed, or once every other recipe
        is stored when one recipe cannot (a step failing on this image fails the same way next time);
        any other exception is transient. Outputs stored before a failure stay (each is whole), so
        a retry skips them.
        """
        try:
            image_id = check_id(job.image_id)
        except PixlineError as exc:
            raise PoisonJobError(str(exc)) from None
        unknown = [name for name in job.recipes if name not in self.derivatives.recipes]
        recipes = [self.derivatives.recipes[name] for name in job.recipes if name not in unknown]
        try:
            meta = self.derivatives.store.get_meta(image_id)
        except NotFoundError:
            raise PoisonJobError(f"image {image_id} is not stored") from None
        report = JobReport(image_id)
        pending: list[Derivative] = []
        for recipe in recipes:
            for target in self.derivatives.targets(recipe, image_id, meta):
                if not job.force and self.derivatives.store.exists(target.key):
                    report.skipped.append(target.key)
                    DERIVATIVES_SKIPPED.labels(recipe.name).inc()
                    continue
                try:
                    self.derivatives.check_output(target)  # before anything is decoded
                except OutputTooLargeError as exc:
                    # Deterministic, like a failing step: this recipe is given up on, the others go on.
                    report.failed.setdefault(recipe.name, str(exc))
                    continue
                pending.append(target)
        if pending:
            self._render(image_id, pending, report, job.force)
        # After the other recipes are stored: a retry would not make these work.
        problems = list(report.failed.values())
        if unknown:
            problems.append(f"unknown recipe(s) {', '.join(unknown)} for image {image_id}")
        if problems:
            raise PoisonJobError("; ".join(problems),
                                 failed={**report.failed, **dict.fromkeys(unknown, "unknown recipe")})
        return report

    def _render(self, image_id: str, pending: list[Derivative], report: JobReport, force: bool) -> None:
        recipes = list({t.recipe.name: t.recipe for t in pending}.values())
        try:
            # The smallest reduced copy every recipe fits within (the decode-once starts from it).
            source = self.derivatives.source(image_id, recipes, pending[0].meta)
        except NotFoundError:
            raise PoisonJobError(f"image {image_id}: metadata is stored but the original is not") from None
        deadline = Deadline(self.time_limit)  # the whole job's budget: its decode and every render
        try:
            # An animation into a format that animates is rendered from the source, every frame.
            stills = [t for t in pending if not (t.encoder.animated and source.animated)]
            decoded = (decode_once(source, list({t.recipe.name: t.recipe for t in stills}.values()),
                                   deadline)
                       if stills else None)
        except StoreUnavailableError:
            raise  # the store, not the job: retried like any passing fault
        except PixlineError as exc:
            # Undecodable or too large an original, or out of time: every recipe would fail alike.
            raise PoisonJobError(str(exc)) from None
        by_recipe: dict[str, list[Derivative]] = {}
        for target in pending:
            by_recipe.setdefault(target.recipe.name, []).append(target)

        # A recipe in several formats (auto) runs its steps once, then encodes each format. Recipes
        # render side by side; outputs already stored when one fails stay (each is whole), so a
        # retry skips them.
        share_steps = decoded is not None and not source.animated
        outcomes = side_by_side(lambda targets: self._render_recipe(targets, source, decoded, deadline,
                                                                    share_steps, force),
                                list(by_recipe.values()), self.output_threads)
        for name, (done, failure) in zip(by_recipe, outcomes):
            report.rendered.extend(done)
            if failure is not None:
                report.failed[name] = failure

    def _render_recipe(self, targets: list[Derivative], source: Source, decoded: pyvips.Image | None,
                       deadline: Deadline, share_steps: bool, force: bool) -> tuple[list[str], str | None]:
        """One recipe's outputs, one after the other: its stored keys, and why it failed. A forced job
        replaces what is stored; otherwise an output stored meanwhile (by a request) stays."""
        image_id = targets[0].image_id
        done: list[str] = []
        stepped: pyvips.Image | None = None
        for target in targets:
            name = target.recipe.name
            started = time.perf_counter()
            try:
                if share_steps and len(targets) > 1 and stepped is None:
                    stepped = self.derivatives.prepare(target, source, decoded, self.render_time_limit,
                                                       deadline)
                rendered = self.derivatives.render(target, source=source, decoded=decoded,
                                                   time_limit=self.render_time_limit, deadline=deadline,
                                                   stepped=stepped, replace=force)
                if rendered.choice is not None and rendered.choice.fallback:
                    # Not stored (engine/derivatives.py): this recipe did not make its output.
                    return done, f"quality: auto for {target.encoder.name}: {rendered.choice.fallback}"
            except StoreUnavailableError:
                raise  # the store, not the job: retried like any passing fault
            except (InputError, ImageDeletedError) as exc:  # the job stops: every output would fail alike
                raise PoisonJobError(str(exc)) from None
            except RenderTimeoutError as exc:
                if deadline.expired:
                    # The job's own budget is spent: the same job would run out again.
                    raise PoisonJobError(str(exc)) from None
                return done, str(exc)  # this render's own time limit
            except PixlineError as exc:
                # A step failing, a recipe that cannot work (a missing asset…): deterministic,
                # so this recipe (its other formats too) is given up on; the others go on.
                log.error("job for image %s: recipe %r failed: %s", image_id, name, exc,
                          exc_info=exc if isinstance(exc, StepError) else None)
                return done, str(exc)
            RENDER_SECONDS.labels(name).observe(time.perf_counter() - started)
            DERIVATIVES_RENDERED.labels(name).inc()
            done.append(target.key)
        return done, None


@dataclass(frozen=True)
class Outcome:
    """What a queue does with a job after one attempt: ``done``, ``retry`` after ``delay``, or
    ``dead`` (dead-letter it). ``reason`` says why it failed."""

    action: str
    job: Job | None = None
    delay: float = 0.0
    reason: str = ""


def _job_line(level: int, job: Job, outcome: str, started: float, text: str, *args: object,
              exc_info: bool = False, **fields: object) -> None:
    """The job log's one line for one attempt at ``job`` (logger ``pixline.jobs``)."""
    duration = (time.perf_counter() - started) * 1000
    JOB_LOG.log(level, "job %s [%s] attempt %d %s in %.0f ms: " + text, job.image_id,
                ",".join(job.recipes), job.attempt + 1, outcome, duration, *args, exc_info=exc_info,
                extra={"image_id": job.image_id, "recipes": list(job.recipes), "outcome": outcome,
                       "attempt": job.attempt + 1, "duration_ms": round(duration, 1), **fields})


def run_job(handler: JobHandler, policy: RetryPolicy, job: Job) -> Outcome:
    """One attempt at ``job`` and what the queue should do next; logs its line and counts the result.

    A poison job (bad input: an unknown image, an undecodable original) is logged without a traceback;
    a failure nobody foresaw gets one when it is given up on.
    """
    started = time.perf_counter()
    try:
        return _attempt(handler, policy, job, started)
    finally:
        release()  # the job's decode and renders are gone: hand their memory back (engine/memory.py)


def _attempt(handler: JobHandler, policy: RetryPolicy, job: Job, started: float) -> Outcome:
    try:
        report = handler.handle(job)
        handler.events.done(job)  # before the ack: a failure to record it is retried
    except PoisonJobError as exc:
        _job_line(logging.ERROR, job, "dead", started, "poison: %s", exc, reason=f"poison: {exc}")
        handler.events.dead(job, exc.failed or dict.fromkeys(job.recipes, str(exc)))
        count_failure(job, "poison")
        count_outcome(JOBS_DEAD_LETTERED, job)
        return Outcome("dead", job, reason=f"poison: {exc}")
    except Exception as exc:  # anything not known to be permanent is worth another try
        count_failure(job, "transient")
        delay = policy.delay_for(job)
        if delay is None:
            reason = f"gave up after {job.attempt + 1} attempts: {exc}"
            _job_line(logging.ERROR, job, "dead", started, "%s", reason, exc_info=True, reason=reason)
            handler.events.dead(job, dict.fromkeys(job.recipes, reason))
            count_outcome(JOBS_DEAD_LETTERED, job)
            return Outcome("dead", job, reason=reason)
        _job_line(logging.WARNING, job, "retry", started, "retrying in %.1f s: %s", delay, exc,
                  reason=str(exc), retry_in=delay)
        count_outcome(JOBS_RETRIED, job)
        return Outcome("retry", job, delay=delay, reason=str(exc))
    count_outcome(JOBS_PROCESSED, job)
    _job_line(logging.INFO, job, "done", started, "%d rendered, %d already stored", len(report.rendered),
              len(report.skipped), rendered=len(report.rendered), skipped=len(report.skipped))
    return Outcome("done", job)


def run_message(handler: JobHandler, policy: RetryPolicy, body: bytes) -> Outcome:
    """:func:`run_job` for a message body; a malformed message is dead-lettered at once."""
    try:
        job = Job.from_json(body)
    except PixlineError as exc:
        JOB_LOG.error("job message malformed, dead: %s", exc, extra={"outcome": "dead",
                                                                       "reason": f"poison: {exc}"})
        JOBS_DEAD_LETTERED.labels("(malformed)").inc()
        return Outcome("dead", None, reason=f"poison: {exc}")
    return run_job(handler, policy, job)
