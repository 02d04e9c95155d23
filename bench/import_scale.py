"""``pixline import`` over a large generated S3 prefix: keys per second and whether memory stays flat.

    .venv/bin/python bench/import_scale.py [KEYS] [DISTINCT_EVERY]

Starts a SeaweedFS on 127.0.0.1 (as the tests do), writes KEYS (default 100 000) small objects under
one prefix — every DISTINCT_EVERY-th (default 100) a distinct small JPEG, decoded, checked and given
its eager presets; the rest copies of one JPEG, which the content id finds already stored (the
listing, the read, the hash and the key's record, but no decode) — then runs ``pixline import`` on
it with a local store, sampling the process's RSS twice a second. Prints the RSS at each tenth of the
keys and the peak; memory is flat when the last tenth's RSS is no higher than the first's (plus
allocator noise). Loopback only; stops by itself.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import seaweedfs  # noqa: E402

from pixline.engine import testing  # noqa: E402


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def fill(fs, prefix: str, keys: int, distinct_every: int) -> None:
    common = testing.jpeg_bytes(testing.gradient(48, 32))
    sem = asyncio.Semaphore(64)

    async def put(n: int) -> None:
        data = testing.jpeg_bytes(testing.gradient(40 + n % 97, 30 + n % 89)) if n % distinct_every == 0 else common
        async with sem:
            await fs._pipe_file(f"{prefix}/{n // 1000:04d}/{n:07d}.jpg", data)

    for start in range(0, keys, 5000):
        await asyncio.gather(*(put(n) for n in range(start, min(keys, start + 5000))))


def main() -> None:
    import s3fs

    keys = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    distinct_every = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    server = seaweedfs.start()
    try:
        fs = s3fs.S3FileSystem(key=server.key, secret=server.secret, asynchronous=True,
                               client_kwargs={"endpoint_url": server.endpoint_url})
        bucket = "import-scale"

        async def setup() -> None:
            session = await fs.set_session()
            await fs._mkdir(bucket)
            started = time.monotonic()
            await fill(fs, f"{bucket}/originals", keys, distinct_every)
            print(f"wrote {keys} keys in {time.monotonic() - started:.0f} s", flush=True)
            await session.close()

        asyncio.run(setup())
        store = tempfile.mkdtemp(prefix="import-scale-")
        env = {**os.environ, "AWS_ACCESS_KEY_ID": server.key, "AWS_SECRET_ACCESS_KEY": server.secret,
               "PIXLINE_LOG_LEVEL": "error"}
        command = [sys.executable, "-m", "pixline.server.commands", "import", f"s3://{bucket}/originals/",
                   "--store", f"file://{store}", "--s3-endpoint", server.endpoint_url, "--concurrency", "2",
                   "--ids", f"{store}/ids.jsonl"]
        started, cpu_before = time.monotonic(), os.times()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        samples: list[tuple[int, float]] = []
        while process.poll() is None:
            done = sum(1 for _ in open(f"{store}/ids.jsonl")) if os.path.exists(f"{store}/ids.jsonl") else 0
            samples.append((done, rss_mb(process.pid)))
            time.sleep(0.5)
        seconds = time.monotonic() - started
        cpu = os.times()
        out = process.stdout.read().decode().strip().splitlines()
        summary = json.loads(out[-1]) if out else {}
        print(json.dumps(summary))
        child_cpu = (cpu.children_user + cpu.children_system) - (cpu_before.children_user + cpu_before.children_system)
        print(f"{keys} keys in {seconds:.0f} s: {keys / seconds:.0f} keys/s, "
              f"{child_cpu / keys * 1000:.2f} ms CPU per key")
        for tenth in range(1, 11):
            mark = keys * tenth // 10
            at = [rss for done, rss in samples if done <= mark and rss]
            print(f"  after {mark:>7} keys: RSS {at[-1] if at else 0:.0f} MB")
        print(f"  peak RSS {max((rss for _, rss in samples), default=0):.0f} MB")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
