"""``pixline import SOURCE``: take in a site's existing originals, each as an upload.

SOURCE is an S3 prefix (``s3://bucket/prefix/``), a local folder, or a file of keys of the
``--source`` library (one a line; ``-`` reads standard input). Every original goes through the upload's
own code path (``http/ingest.py``: every check, the reduced copies, meta last) and its eager recipes
are queued (``--amqp``) or rendered here, as ``regenerate`` does. docs/architecture.md, "An import".

- Bounded: ``--concurrency`` originals at once, a listing read a page at a time, at most twice that
  many keys between the listing and the workers: memory does not grow with the library.
- Idempotent and resumable: an original's id comes from its bytes, and each key taken in is
  recorded (``SourceRecord``: ``GET /images?source_key=…`` answers with it), so a key already taken
  in, at the same version, is skipped without being read. The listing's position is kept in the store
  (``imports/<hash of SOURCE>.json``, at most a second behind); a run after an interruption, even a
  SIGKILL, goes on from there, and what it redoes is idempotent. Nothing half-stored is visible: meta
  is written last.
- Refused originals (every limit an upload has) and failed ones are reported, one JSON line each (``--report``), and
  make the exit status 1; a store or library that fails is a failure too, and the position stops
  before it, so the next run tries that key again.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any, Iterator

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from pixline.engine import analysis
from pixline.engine.errors import NotFoundError, PixlineError, StoreUnavailableError
from pixline.engine.library import Entry, HttpLibrary, Library, SourceRecord, open_library

from ..http.errors import status_for
from ..http.ingest import ingest_original
from ..queue.jobs import Job
from .flags import EVENT_SETTINGS, INPUT_LIMITS, URL_SOURCES, add_flags, settings_from
from .wiring import make_derivatives, make_fetcher, running_events

log = logging.getLogger(__name__)

#: Seconds between writes of the listing's position.
CHECKPOINT_EVERY = 1.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="take in a library of originals (an S3 prefix, a folder, a list of keys)",
                       epilog="""\
examples:
  pixline import s3://photos/originals/ --store s3://pixline/data --amqp amqp://guest:guest@127.0.0.1:5672/
  pixline import ./old-site/uploads --report refused.jsonl      # render eager presets here
  pixline import keys.txt --source s3://photos/originals/      # one key of the source a line
  find . -name '*.jpg' | pixline import - --source .           # keys from standard input
  pixline import urls.txt --allow-source-host cdn.example.com  # one https:// URL a line

The summary (JSON) goes to standard output; exit status 1 when any original was refused or failed.
Run it again after an interruption: it goes on where it stopped.
""")
    p.add_argument("library", metavar="SOURCE", help="s3://BUCKET/PREFIX/, a folder, or a file of keys ('-': stdin)")
    p.add_argument("--concurrency", type=int, default=2, metavar="N",
                   help="originals taken in at once (default 2)")
    p.add_argument("--report", metavar="FILE", help="write each refused or failed original as a JSON line "
                   "{source_key, status, reason, outcome} (appended when the run resumes)")
    p.add_argument("--ids", metavar="FILE", help="write each original taken in as a JSON line "
                   "{source_key, id, created, placeholders}")
    add_flags(p, "store", "s3_endpoint", "source", "amqp", "queue", "recipes", "reduced_size",
              "reduced_small_size", "render_timeout", "job_timeout", "public_url", *INPUT_LIMITS,
              *EVENT_SETTINGS, *URL_SOURCES)
    p.set_defaults(func=run)


@dataclass
class Outcome:
    """One key's result: ``imported``, ``existing``, ``refused`` (its input error) or ``failed``."""

    key: str
    status: str
    image_id: str | None = None
    reason: str = ""
    http_status: int = 0
    #: The image's placeholders (engine/analysis.py), for the ``--ids`` line: a site that imports
    #: its library can show them before any preset is rendered, without a GET per image.
    placeholders: dict[str, Any] = field(default_factory=dict)


class Importer:
    """Takes in one key at a time, from any thread (``take``)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.settings = settings_from(args)
        self.derivatives = make_derivatives(self.settings)
        self.store = self.derivatives.store
        self.decodes = threading.BoundedSemaphore(max(1, args.concurrency))
        self.publisher = None
        self.handler = None
        self._events: contextlib.ExitStack | None = None
        if self.settings.amqp:
            from ..queue.outbox import OutboxPublisher
            from ..queue.publisher import AmqpJobPublisher

            # As uploads: the job waits in the store's outbox until the broker confirms it.
            self.publisher = OutboxPublisher(self.store, AmqpJobPublisher(self.settings, reconnect_pause=0),
                                             interval=0)
        else:
            from ..queue.handler import JobHandler

            self._events = contextlib.ExitStack()  # its events sent while it runs (--webhook-url…)
            events = self._events.enter_context(running_events(self.settings, self.derivatives, drain=True))
            self.handler = JobHandler.from_settings(self.derivatives, self.settings, events)

    def take(self, library: Library, entry: Entry) -> Outcome:
        key = entry.key
        try:
            library.check_key(key)
            known = SourceRecord.find(self.store, key)
            if known and entry.version and known.version == entry.version:
                meta = self._meta(known.image_id)
                if meta is not None:  # its meta read instead of checked for: one GET, the placeholders
                    return Outcome(key, "existing", known.image_id, placeholders=analysis.placeholders(meta))
            data, version = library.read(key, self.derivatives.limits.max_bytes)
            ingested = ingest_original(self.derivatives, self.settings, data, {}, self.decodes,
                                       extra_meta={"source_key": key})
            # Queued even when the bytes were there: a run killed after storing them and before
            # queueing left an image without presets (jobs skip what is stored). The record comes
            # last: it says this key is done.
            self._queue(ingested.image_id)
            SourceRecord(key, ingested.image_id, version).save(self.store)
            return Outcome(key, "imported" if ingested.created else "existing", ingested.image_id,
                           placeholders=analysis.placeholders(ingested.meta))
        except StoreUnavailableError as exc:  # the store, or a source host (502/504), failed: try again
            return Outcome(key, "failed", reason=str(exc), http_status=status_for(exc))
        except PixlineError as exc:  # what an upload would be refused for, or a key that is gone
            return Outcome(key, "refused", reason=str(exc), http_status=status_for(exc))

    def _meta(self, image_id: str) -> dict[str, Any] | None:
        """The stored image's meta; ``None`` when it is gone (deleted since the key was recorded)."""
        try:
            return self.store.get_meta(image_id)
        except NotFoundError:
            return None

    def _queue(self, image_id: str) -> None:
        eager = self.derivatives.eager_recipes
        if not eager:
            return
        job = Job(image_id, eager)
        if self.publisher is not None:
            try:
                self.publisher.publish(job)
            except Exception as exc:  # the job stays in the outbox: any pixline serve publishes it
                log.warning("could not queue %s for %s (%s); it waits in the outbox", ", ".join(eager),
                            image_id, exc)
            return
        from ..queue.handler import RetryPolicy, run_job

        run_job(self.handler, RetryPolicy(retries=0), job)  # a failure is logged and dead-lettered

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
        if self._events is not None:
            self._events.close()


class Position:
    """The listing's position that every key before has been taken in at: kept in the store.

    Keys finish out of order on several threads; the position moves only past keys whose every
    predecessor is done (and not failed), so a run after a kill redoes at most what was in flight.
    """

    def __init__(self, store: Any, source: str) -> None:
        self.store = store
        self.key = f"imports/{hashlib.sha256(source.encode()).hexdigest()[:32]}.json"
        self.source = source
        self.pending: deque[list] = deque()  # [key, done, failed], in listing order
        self.after: str | None = None
        self.stuck = False  # a key failed: the position stays before it
        self.saved_at = 0.0
        self.lock = threading.Lock()

    def load(self) -> str | None:
        try:
            self.after = json.loads(self.store.get(self.key)).get("after")
        except NotFoundError:
            self.after = None
        return self.after

    def started(self, key: str) -> list:
        item = [key, False, False]
        with self.lock:
            self.pending.append(item)
        return item

    def finished(self, item: list, failed: bool) -> None:
        with self.lock:
            item[1], item[2] = True, failed
            while self.pending and self.pending[0][1] and not self.stuck:
                key, _, was_failed = self.pending.popleft()
                if was_failed:
                    self.stuck = True
                    break
                self.after = key
        if time.monotonic() - self.saved_at > CHECKPOINT_EVERY:
            self.save()

    def save(self) -> None:
        with self.lock:
            after, self.saved_at = self.after, time.monotonic()
        self.store.put(self.key, json.dumps({"source": self.source, "after": after}).encode())


def run(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise PixlineError("--concurrency is at least 1")
    importer = Importer(args)
    library, entries, source = _entries(args, importer)
    position = Position(importer.store, source)
    after = position.load()
    counts = {"imported": 0, "existing": 0, "refused": 0, "failed": 0}
    started = time.monotonic()
    report = _open(args.report, resume=after is not None)
    ids = _open(args.ids, resume=after is not None)
    interrupted = False
    try:
        with logging_redirect_tqdm(), ThreadPoolExecutor(args.concurrency) as pool, \
                tqdm(desc="importing", unit="image", disable=None, file=sys.stderr) as bar:
            in_flight: deque[Future] = deque()
            try:
                for mark, entry in entries(after):
                    item = position.started(mark)
                    in_flight.append(pool.submit(_take, importer, library, entry, position, item))
                    while len(in_flight) >= 2 * args.concurrency or (in_flight and in_flight[0].done()):
                        _record(in_flight.popleft().result(), counts, report, ids, bar)
            except KeyboardInterrupt:
                interrupted = True
            for future in in_flight:
                _record(future.result(), counts, report, ids, bar)
    finally:
        position.save()
        importer.close()
        for f in (report, ids):
            if f is not None:
                f.close()
    seconds = time.monotonic() - started
    summary = {"source": source, **counts, "seconds": round(seconds, 2),
               "images_per_second": round((counts["imported"] + counts["existing"]) / seconds, 2) if seconds else 0,
               "resumed_after": after, "interrupted": interrupted}
    print(json.dumps(summary))
    if interrupted:
        raise KeyboardInterrupt
    if counts["refused"] or counts["failed"]:
        raise PixlineError(f"{counts['refused']} original(s) refused and {counts['failed']} failed"
                           + (f" (see {args.report})" if args.report else " (--report FILE lists them)")
                           + "; run it again to retry the failed ones")
    return 0


def _take(importer: Importer, library: Library, entry: Entry, position: Position, item: list) -> Outcome:
    outcome = importer.take(library, entry)
    position.finished(item, failed=outcome.status == "failed")
    return outcome


def _record(outcome: Outcome, counts: dict[str, int], report: IO[str] | None, ids: IO[str] | None,
            bar: tqdm) -> None:
    counts[outcome.status] += 1
    bar.update()
    if outcome.status in ("refused", "failed") and report is not None:
        report.write(json.dumps({"source_key": outcome.key, "status": outcome.http_status,
                                 "reason": outcome.reason, "outcome": outcome.status}) + "\n")
        report.flush()
    elif outcome.image_id and ids is not None:
        ids.write(json.dumps({"source_key": outcome.key, "id": outcome.image_id,
                              "created": outcome.status == "imported",
                              "placeholders": outcome.placeholders}) + "\n")
        ids.flush()


def _open(path: str | None, resume: bool) -> IO[str] | None:
    return open(path, "a" if resume else "w", encoding="utf-8") if path else None  # noqa: SIM115


def _entries(args: argparse.Namespace, importer: Importer) -> tuple[Library, Any, str]:
    """The library keys come from, a function listing (position, entry) pairs past a position, and
    the name the position is kept under."""
    given = args.library
    fetcher = make_fetcher(importer.settings)
    is_url = given.lower().startswith(("https://", "http://"))
    if given.startswith("s3://") or is_url or _is_folder(given):
        library = open_library(given, importer.settings.s3_endpoint, fetcher)
        if is_url:
            library.entries()  # says a URL prefix cannot be listed, and what to do instead
        return library, lambda after: ((e.key, e) for e in library.entries(after)), library.url
    if not importer.settings.source:
        if fetcher is None:
            raise PixlineError(f"{given}: a file of keys needs --source (the library the keys are in); a file "
                               "of URLs needs --allow-source-host HOST (the hosts they may be fetched from)")
        # No --source: each line is a whole URL, fetched as the policy allows.
        return HttpLibrary(fetcher), lambda after: _lines(given, after), f"URLs from {given}"
    library = open_library(importer.settings.source, importer.settings.s3_endpoint, fetcher)
    return library, lambda after: _lines(given, after), f"{library.url} keys from {given}"


def _lines(path: str, after: str | None) -> Iterator[tuple[str, Entry]]:
    """The keys of a file, one a line, with their line numbers as positions: ``after`` is one."""
    skip = int(after) if after and after.isdigit() else 0
    with contextlib.ExitStack() as stack:
        stream = sys.stdin if path == "-" else stack.enter_context(open(path, encoding="utf-8"))
        for number, line in enumerate(stream, 1):
            key = line.strip()
            if number > skip and key:
                yield str(number), Entry(key)


def _is_folder(path: str) -> bool:
    return os.path.isdir(path[len("file://"):] if path.startswith("file://") else path)
