"""``pixline regenerate RECIPE``: render a recipe again for every stored image.

With a broker (``--amqp`` / ``PIXLINE_AMQP``) it publishes one job per image and the workers render
them; without one it renders here, in this process, with the same job handler (``pixline serve``'s
in-process queue lives inside the server's processes, out of this command's reach). Either way a
derivative already stored for the recipe's current digest is kept unless ``--force`` is given: after a
recipe changes, its digest changes, so every image is rendered anew anyway.

``--prune`` deletes, instead, the derivatives stored under digests no recipe has any more (of RECIPE,
or of every recipe): what an edited recipe or an upgraded plugin left behind. Ad-hoc outputs stay.

``--analyse`` runs, instead, the installed analysers an image has no result of (at their version) on
every stored image that lacks one (engine/analysis.py ``analyse_stored``): an analyser installed after
images were taken in, or upgraded. It renders nothing; the result is in each image's meta.
"""
from __future__ import annotations

import argparse
import logging
from typing import Any, Mapping

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from pixline.engine import analysis, reduced
from pixline.engine.deadline import Deadline
from pixline.engine.derivatives import Derivatives
from pixline.engine.errors import NotFoundError, PixlineError

from ..http.urlsteps import ADHOC_RECIPE
from ..queue.jobs import Job
from ..settings import Settings
from .flags import EVENT_SETTINGS, INPUT_LIMITS, URL_SOURCES, add_flags, settings_from
from .wiring import make_derivatives, running_events

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("regenerate", help="render a recipe again for every stored image", epilog="""\
examples:
  pixline regenerate thumb --dry-run               # how many images it would touch
  pixline regenerate thumb                         # render here, in this process
  pixline regenerate thumb --amqp amqp://guest:guest@127.0.0.1:5672/   # one job per image
  pixline regenerate thumb --force                 # also outputs already stored
  pixline regenerate --prune --dry-run             # how many outputs no recipe's digest has any more
  pixline regenerate --prune                       # delete them (of every recipe; name one to narrow)
  pixline regenerate --analyse --dry-run           # how many images lack an installed analyser's result
  pixline regenerate --analyse                     # analyse them (after installing an analyser)
""")
    p.add_argument("recipe", nargs="?", help="recipe name (none with --prune or --analyse)")
    p.add_argument("--dry-run", action="store_true", help="only say how many images it would touch")
    p.add_argument("--force", action="store_true",
                   help="re-render outputs that are already stored for the current digest")
    p.add_argument("--prune", action="store_true",
                   help="delete the outputs stored under digests no recipe has any more, render nothing")
    p.add_argument("--analyse", action="store_true",
                   help="run the installed analysers each image has no result of, render nothing")
    add_flags(p, "amqp", "queue", "store", "s3_endpoint", "source", "recipes", "job_retries", "job_delivery_limit",
              "job_retry_delay", "max_output_pixels", "render_timeout", "job_timeout", "public_url",
              *INPUT_LIMITS, *EVENT_SETTINGS, *URL_SOURCES)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    derivatives = make_derivatives(settings)
    if args.analyse:
        if args.prune or args.recipe or args.force:
            raise PixlineError("--analyse renders and deletes nothing: give it no recipe, --prune or --force")
        return _analyse(derivatives, settings, args.dry_run)
    if args.prune:
        return _prune(derivatives, args.recipe, args.dry_run)
    if not args.recipe:
        raise PixlineError("name the recipe to regenerate (or give --prune)")
    recipe = derivatives.recipe(args.recipe)
    image_ids = list(derivatives.store.image_ids())
    where = f"through {settings.queue}" if settings.amqp else "in this process (no --amqp)"
    if args.dry_run:
        print(f"would regenerate {recipe.name!r} (digest {recipe.digest}) for {len(image_ids)} "
              f"image(s) {where}")
        return 0
    jobs = [Job(image_id, (recipe.name,), force=args.force) for image_id in image_ids]
    if settings.amqp:
        _publish(settings, jobs)
        print(f"queued {len(jobs)} job(s) for {recipe.name!r} on {settings.queue}")
        return 0
    failed = _render_here(derivatives, settings, jobs)
    print(f"rendered {recipe.name!r} for {len(jobs) - failed} of {len(jobs)} image(s)")
    if failed:
        raise PixlineError(f"{failed} image(s) failed; see the log above, then run it again")
    return 0


def _prune(derivatives: Derivatives, recipe: str | None, dry_run: bool) -> int:
    if recipe:
        derivatives.recipe(recipe)  # a recipe that is not in the set: say so, delete nothing
    stale = derivatives.stale_keys(keep=(ADHOC_RECIPE,), recipe=recipe)
    if dry_run:
        print(f"would delete {len(stale)} output(s) under digests no recipe has any more")
        return 0
    derivatives.delete_derived(stale)
    print(f"deleted {len(stale)} output(s) under digests no recipe has any more")
    return 0


def _analyse(derivatives: Derivatives, settings: Settings, dry_run: bool) -> int:
    """Analyse every stored image that lacks an installed analyser's result; print the count."""
    analysers, store = derivatives.registry.analysers, derivatives.store
    todo = []
    for image_id in store.image_ids():
        try:
            if analysis.missing(analysers, store.get_meta(image_id)):
                todo.append(image_id)
        except NotFoundError:
            continue  # deleted since the listing
    if dry_run:
        print(f"would analyse {len(todo)} image(s) lacking an installed analyser's result")
        return 0
    failed = 0
    with logging_redirect_tqdm():
        for image_id in tqdm(todo, desc="analysing", unit="image", disable=None):
            try:
                meta = store.get_meta(image_id)
                ctx = analysis.image_context(meta, Deadline(settings.render_timeout or None))
                analysis.analyse_stored(store, analysers, image_id, derivatives.limits, ctx,
                                        original=_in_place_original(derivatives, image_id, meta))
            except PixlineError as exc:  # unreadable here (a library that changed): the others go on
                if isinstance(exc, NotFoundError) and not store.has_image(image_id):
                    continue  # deleted meanwhile: nothing to analyse, and nothing was written back
                failed += 1
                log.warning("image %s: not analysed: %s", image_id, exc)
    print(f"analysed {len(todo) - failed} of {len(todo)} image(s) lacking an installed analyser's result")
    if failed:
        raise PixlineError(f"{failed} image(s) were not analysed; see the log above, then run it again")
    return 0


def _in_place_original(derivatives: Derivatives, image_id: str, meta: Mapping[str, Any]) -> bytes | None:
    """The original of an image served in place with no reduced copy (analyse_stored reads the
    others from the store itself), read from its library; ``None`` for every other image."""
    if not meta.get("in_place") or any(meta.get(level.meta_key) for level in reduced.LEVELS):
        return None
    return derivatives.original(image_id, meta)


def _publish(settings: Settings, jobs: list[Job]) -> None:
    from ..queue.publisher import AmqpJobPublisher

    publisher = AmqpJobPublisher(settings, reconnect_pause=0)
    try:
        for done, job in enumerate(tqdm(jobs, desc="queueing", unit="image", disable=None)):
            try:
                publisher.publish(job)
            except Exception as exc:  # stop at the first refusal: say how far it got
                raise PixlineError(f"queued {done} of {len(jobs)} job(s), then the broker failed: "
                                   f"{exc}; run it again (jobs are idempotent)") from None
    finally:
        publisher.close()


def _render_here(derivatives: Derivatives, settings: Settings, jobs: list[Job]) -> int:
    from ..queue.handler import JobHandler, RetryPolicy, run_job

    # The same time limits as a worker's: a job that runs out of time is reported, not retried.
    no_retries = RetryPolicy(retries=0)  # a failure is reported at the end; run again to retry
    failed = 0
    # The bar only on a terminal (disable=None), where log lines are written above it, not through it.
    with logging_redirect_tqdm(), running_events(settings, derivatives, drain=True) as events:
        handler = JobHandler.from_settings(derivatives, settings, events)
        for job in tqdm(jobs, desc=f"rendering {jobs[0].recipes[0]}" if jobs else "rendering",
                        unit="image", disable=None):
            if run_job(handler, no_retries, job).action != "done":
                failed += 1
    return failed
