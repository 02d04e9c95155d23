"""pixline against its peer (thumbor 7.8) and raw pyvips on the same work, interleaved in one run.

Scenarios (bench/README.md says what each measures and why):

  engine        pixline.engine.render vs raw pyvips (thumbnail + jpegsave, same options), in process
  analysers     CPU per upload of the installed analysers on the 768 px reduced copy, in process
  auto-quality  quality: auto vs fixed q80, the one fixed quality every photo needs, thumbor q80: bytes, scores
  miss          distinct 300–339 px JPEG q80 renders of 2–5 MP photos, c=16: pixline vs thumbor
  miss-large    the same of an 18 MP progressive JPEG built at run time, c=4
  bytes         bytes per response for the same outputs, pixline vs thumbor
  hit           stored derivatives at c=32: pixline on files and on SeaweedFS, each against a bare falcon app
  eager-stream  12 uploads through RabbitMQ to every eager preset stored vs raw pyvips
  upload        one 18 MP upload: time to 201 and to every eager preset stored

Everything listens on 127.0.0.1, every loop is bounded, and the run stops by itself.
    .venv/bin/python bench/run.py --peer thumbor      (make bench)
"""
from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

import pyvips

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # tests.seaweedfs

import analysers  # noqa: E402
import auto_quality  # noqa: E402
import converter  # noqa: E402
import photos  # noqa: E402
import report  # noqa: E402
from load import Wrk  # noqa: E402
from procs import Group, describe_machine  # noqa: E402
from scenarios import Side, interleaved, miss_path  # noqa: E402
from servers import BareApp, BareS3App, PixlineServer, PixlineWorker, adhoc_path, free_port  # noqa: E402

AMQP = "amqp://guest:guest@127.0.0.1:5672/"
#: What ``--only`` takes; all of them by default.
SCENARIOS = ("engine", "analysers", "auto-quality", "miss", "hit", "converter")


def pixline_side(name: str, server: PixlineServer, ids: dict[str, str], box_start: int,
                 widths: range = range(300, 340)) -> Side:
    def path_for(photo: str, width: int, box: int) -> str:
        return adhoc_path(f"resize:w={width},h={box}/format:t=jpeg,q=80", ids[photo])
    return Side(name, server.base_url, Group(name, [server.pid]),
                miss_path(sorted(ids), path_for, widths, box_start))


def thumbor_side(thumbor, names: list[str], box_start: int, widths: range = range(300, 340)) -> Side:
    return Side("thumbor", thumbor.base_url, Group("thumbor", [thumbor.proc.pid]),
                miss_path(sorted(names), thumbor.fit_path, widths, box_start))


def bench_engine(photo: Path, n: int) -> dict:
    """CPU per render in process: the engine against a bare thumbnail + jpegsave."""
    from pixline.engine import Context, Source, render
    from pixline.engine.registry import Registry
    from pixline.engine.testing import recipe

    registry = Registry.load()
    data = photo.read_bytes()
    ours, raw = [], []
    for i in range(n):  # interleaved, distinct widths
        width = 300 + i
        r = recipe(registry, [{"resize": {"width": width}}, {"format": {"type": "jpeg", "quality": 80}}])
        start = time.process_time()
        render(r, Source(data), registry)
        ours.append(time.process_time() - start)
        start = time.process_time()
        encoder = registry.encoders["jpeg"]
        encoder.encode(pyvips.Image.thumbnail_buffer(data, width, height=100_000, size="down"),
                       r.output_spec, False, Context())
        raw.append(time.process_time() - start)
    ours.sort(), raw.sort()
    return {"pixline_cpu_ms": 1000 * ours[n // 2], "raw_cpu_ms": 1000 * raw[n // 2], "n": n}


def bytes_sample(server: PixlineServer, thumbor, ids: dict[str, str]) -> dict:
    """The same outputs from both (each photo at five widths): body bytes."""
    ours = theirs = count = 0
    for photo, image_id in sorted(ids.items()):
        for width in (300, 320, 340, 600, 1200):
            status, body = server.get(adhoc_path(f"resize:w={width},h=10000/format:t=jpeg,q=80", image_id))
            status2, body2 = thumbor.get(thumbor.fit_path(photo, width, 10000))
            if status == status2 == 200:
                ours, theirs, count = ours + len(body), theirs + len(body2), count + 1
    return {"pixline_bytes": ours / count, "thumbor_bytes": theirs / count, "outputs": count}


def broker_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=2):
            return True
    except OSError:
        return False


def delete_queues(queue: str) -> None:
    import pika

    from pixline.server.queue.topology import Topology
    from pixline.server.settings import Settings

    conn = pika.BlockingConnection(pika.URLParameters(AMQP))
    try:
        channel = conn.channel()
        for name in Topology.from_settings(Settings(queue=queue)).queue_names:
            channel.queue_delete(name)
    finally:
        conn.close()


#: Always measured beside pixline's defaults: the same server without reduced copies, so every miss
#: decodes the original as thumbor does (what the copies made at upload save, and what is left).
ORIGINALS = "pixline, originals:PIXLINE_REDUCED_SIZE=0,PIXLINE_REDUCED_SMALL_SIZE=0"
RESIZER = "pixline, resizer role"


def start_variants(args, work: Path, miss_photos: list[Path], large: Path) -> list[tuple[str, PixlineServer, dict]]:
    """``pixline, originals`` and each ``--variant NAME:VAR=VALUE,…``: more pixline servers with other
    settings, measured alongside."""
    variants = []
    for spec in [ORIGINALS, *args.variant]:
        name, _, assignments = spec.partition(":")
        env = dict(a.split("=", 1) for a in assignments.split(",") if a)
        server = PixlineServer(f"file://{work / ('store-' + name.replace(' ', '').replace(',', '-'))}", env=env)
        ids = {p.name: server.upload(p.read_bytes()) for p in miss_photos}
        ids[photos.LARGE_NAME] = server.upload(large.read_bytes())
        variants.append((name, server, ids))
    return variants


def run_misses(args, results, wrk, server, thumbor, ids, large_id, variants) -> None:
    print("miss: 2–5 MP photos → 300–339 px JPEG q80, c=16", flush=True)
    sides = [pixline_side("pixline", server, {k: v for k, v in ids.items()}, 2000)]
    sides += [pixline_side(name, srv, {k: v for k, v in vids.items() if k != photos.LARGE_NAME}, 2000)
              for name, srv, vids in variants]
    if thumbor:
        sides.append(thumbor_side(thumbor, list(ids), 2000))
    results["miss"] = interleaved(wrk, sides, args.rounds, 16, args.seconds, 20_000)
    print("miss-large: 18 MP progressive JPEG → 300–339 px, c=4", flush=True)
    sides = [pixline_side("pixline", server, {photos.LARGE_NAME: large_id}, 8000)]
    sides += [pixline_side(name, srv, {photos.LARGE_NAME: vids[photos.LARGE_NAME]}, 8000)
              for name, srv, vids in variants]
    if thumbor:
        sides.append(thumbor_side(thumbor, [photos.LARGE_NAME], 8000))
    results["miss-large"] = interleaved(wrk, sides, max(2, args.rounds - 1), 4, max(10, 1.5 * args.seconds),
                                        10_000)
    if thumbor:
        results["bytes"] = bytes_sample(server, thumbor, ids)


def run_hits(args, results, wrk, work: Path, file_server: PixlineServer, ids: dict[str, str]) -> None:
    from tests import seaweedfs

    print("hit: stored derivatives, c=32 (pixline on files and on SeaweedFS vs a bare falcon app)",
          flush=True)
    steps = [f"resize:w={w},h=10000/format:t=jpeg,q=80" for w in range(400, 425)]
    weed = seaweedfs.start()
    s3_server = bare = bare_s3 = None
    try:
        import s3fs

        fs = s3fs.S3FileSystem(key=weed.key, secret=weed.secret,
                               client_kwargs={"endpoint_url": weed.endpoint_url})
        fs.mkdir("bench")
        env = {"AWS_ACCESS_KEY_ID": weed.key, "AWS_SECRET_ACCESS_KEY": weed.secret}
        s3_server = PixlineServer("s3://bench/pixline", "--s3-endpoint", weed.endpoint_url, env=env)
        s3_ids = {name: s3_server.upload((work / "photos" / name).read_bytes()) for name in ids}
        paths = {}
        for name, server, id_map in (("pixline files", file_server, ids), ("pixline s3", s3_server, s3_ids)):
            paths[name] = [adhoc_path(s, i) for s in steps for i in id_map.values()]
            for path in paths[name]:  # store every derivative once
                status, body = server.get(path)
                if status != 200:
                    raise RuntimeError(f"{name}: {path} answered {status}")
        body_file = work / "hit-body.jpg"
        body_file.write_bytes(body)
        bare = BareApp(body_file)
        paths["bare falcon"] = paths["pixline files"]
        keys_file = work / "hit-keys.txt"  # the ad-hoc derivatives just stored (not the eager presets)
        keys_file.write_text("\n".join(k.removeprefix("bench/pixline/")
                                       for k in fs.find("bench/pixline/derived/adhoc")))
        bare_s3 = BareS3App(weed.endpoint_url, "bench/pixline", keys_file, env)
        paths["bare falcon s3"] = paths["pixline s3"]
        sides = [Side(name, srv.base_url, Group(name, [srv.pid]), lambda n, p=paths[name]: p[n % len(p)])
                 for name, srv in (("bare falcon", bare), ("pixline files", file_server),
                                   ("bare falcon s3", bare_s3), ("pixline s3", s3_server))]
        results["hit"] = interleaved(wrk, sides, args.rounds, 32, args.hit_seconds, 20_000, distinct=False)
        results["hit"]["body_bytes"] = len(body)
    finally:
        for proc in (bare, bare_s3, s3_server):
            if proc:
                proc.stop()
        weed.stop()


def run_converter(args, results, work: Path, large: Path) -> None:
    results["one-upload"] = converter.one_upload_presets(HERE / "TwoWings.jpg")
    print(f"one upload's presets: {results['one-upload']}", flush=True)
    if broker_up():
        print("eager-stream: 12 uploads through RabbitMQ and one pixline worker vs raw pyvips", flush=True)
        queue = f"pixline.bench.{int(time.time())}"
        store_dir = work / "stream-store"
        server = PixlineServer(f"file://{store_dir}", "--amqp", AMQP, "--queue", queue)
        worker = PixlineWorker(f"file://{store_dir}", AMQP, queue)
        try:
            results["eager-stream"] = converter.eager_stream(server, worker, store_dir, args.stream_rounds)
        finally:
            worker.stop(), server.stop()
            delete_queues(queue)
    else:
        results["eager-stream"] = {"skipped": "no RabbitMQ at 127.0.0.1:5672 (make rabbitmq starts one)"}
    print("upload: one 18 MP progressive JPEG (in-process queue)", flush=True)
    store_dir = work / "upload-store"
    server = PixlineServer(f"file://{store_dir}")
    try:
        results["upload"] = converter.upload_large(server, store_dir, large, args.stream_rounds)
    finally:
        server.stop()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", choices=("thumbor", "none"), default="thumbor")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per scenario")
    parser.add_argument("--seconds", type=float, default=8, help="seconds per side per miss round")
    parser.add_argument("--hit-seconds", type=float, default=4, help="seconds per side per hit round")
    parser.add_argument("--stream-rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None, choices=SCENARIOS,
                        help=f"scenarios to run ({' '.join(SCENARIOS)}); default: all")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:VAR=VALUE,…",
                        help="another pixline server with these environment variables, in the miss "
                             "scenarios (e.g. one:VIPS_CONCURRENCY=1)")
    return parser.parse_args()


def run_served(args, results, work: Path, miss_photos: list[Path], large: Path) -> None:
    """miss and hit: a pixline server with the photos uploaded (and thumbor, for misses), under wrk."""
    only = set(args.only or SCENARIOS)
    wrk = Wrk()
    thumbor = server = None
    try:
        if args.peer == "thumbor" and "miss" in only:
            from peer_thumbor import Thumbor

            thumbor = Thumbor(work / "photos", free_port())
        server = PixlineServer(f"file://{work / 'store'}")
        ids = {p.name: server.upload(p.read_bytes()) for p in miss_photos}
        large_id = server.upload(large.read_bytes())
        if "miss" in only:
            variants = start_variants(args, work, miss_photos, large)
            # What a fleet serves misses with (deploy/): a resizer over the same store, which neither
            # takes uploads nor imports what analysing them needs (OpenCV for faces).
            resizer = PixlineServer(f"file://{work / 'store'}", env={"PIXLINE_ROLE": "resizer"})
            variants.append((RESIZER, resizer, {**ids, photos.LARGE_NAME: large_id}))
            try:
                run_misses(args, results, wrk, server, thumbor, ids, large_id, variants)
            finally:
                for _, srv, _ in variants:
                    srv.stop()
        if "hit" in only:
            run_hits(args, results, wrk, work, server, ids)
    finally:
        for proc in (thumbor, server):
            if proc:
                proc.stop()
        wrk.close()


def run_auto_quality(args, results) -> None:
    """quality: auto against fixed qualities (and thumbor's q80, its own process over the same photos)."""
    print("auto-quality: quality: auto vs fixed qualities at 600 px, per format, in process", flush=True)
    thumbor = None
    with tempfile.TemporaryDirectory(prefix="pixline-bench-aq-") as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for photo in auto_quality.photos():
            (folder / photo.name).write_bytes(photo.read_bytes())
        try:
            if args.peer == "thumbor":
                from peer_thumbor import Thumbor

                thumbor = Thumbor(folder, free_port())
            results["auto-quality"] = auto_quality.bench_auto_quality(thumbor=thumbor)
        finally:
            if thumbor:
                thumbor.stop()


def main() -> int:
    args = parse_args()
    only = set(args.only or SCENARIOS)
    pyvips.cache_set_max(0)
    started = time.monotonic()
    results: dict = {"machine": describe_machine(), "libvips": ".".join(str(pyvips.version(i)) for i in range(3)),
                     "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    if "engine" in only:
        results["engine"] = bench_engine(HERE / "TwoWings.jpg", 30)
        print(f"engine: {results['engine']}", flush=True)
    if "analysers" in only:
        print("analysers: CPU per upload of the installed analysers, in process", flush=True)
        results["analysers"] = analysers.bench_analysers()
    if "auto-quality" in only:
        run_auto_quality(args, results)
    if only & {"miss", "hit", "converter"}:  # the scenarios that upload to servers
        with tempfile.TemporaryDirectory(prefix="pixline-bench-") as tmp:
            work = Path(tmp)
            photo_dir = work / "photos"
            photo_dir.mkdir()
            miss_photos = photos.copy_miss_photos(photo_dir)
            large = photos.build_large(photo_dir)
            if only & {"miss", "hit"}:
                run_served(args, results, work, miss_photos, large)
            if "converter" in only:
                run_converter(args, results, work, large)
    results["bench_seconds"] = round(time.monotonic() - started)
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2))
    text = report.render(results)
    print(text)
    if args.only is None and not args.variant:
        args.out.write_text(text)
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
