"""bench/RESULTS.md from a run's results: the machine, each scenario's table, and the issues' targets
(#10, #21, #22)."""
from __future__ import annotations

import datetime
import statistics
from typing import Callable


def _f(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ratio(a, b) -> str:
    return f"{a / b:.2f}×" if a is not None and b else "–"


def load_table(title: str, sides: dict[str, dict], base: str | None = None) -> list[str]:
    names = list(sides)
    lines = [f"### {title}", "", "| | " + " | ".join(names) + (f" | ratio to {base}" if base else "") + " |",
             "| --- |" + " --- |" * (len(names) + (1 if base else 0))]
    rows = [("throughput, req/s (median; range)",
             lambda s: f"{s['rps']:.1f} ({s['rps_range'][0]}–{s['rps_range'][1]})", "rps"),
            ("latency p50 / p95 / p99, ms", lambda s: f"{s['p50_ms']:.0f} / {s['p95_ms']:.0f} / {s['p99_ms']:.0f}",
             None),
            ("server CPU per response, ms", lambda s: _f(s["cpu_ms_per_ok"]), "cpu_ms_per_ok"),
            ("responses: ok / error status / socket errors",
             lambda s: f"{s['ok']} / {s['errors']} / {s['socket_errors']}", None),
            ("peak RSS per process, MB", lambda s: ", ".join(map(str, s["peak_rss_mb"])), None),
            ("bytes per response (headers included)", lambda s: _f(s["bytes_per_response"], 0), None),
            ("load generator CPU per request, ms", lambda s: _f(s["client_cpu_ms_per_request"], 3), None)]
    for label, fmt, key in rows:
        cells = [fmt(sides[n]) for n in names]
        extra = ""
        if base:
            others = [n for n in names if n != base]
            extra = " | " + ", ".join(
                f"{n}: {_ratio(sides[n][key], sides[base][key])}" for n in others) if key else " | "
        lines.append(f"| {label} | " + " | ".join(cells) + extra + " |")
    return lines + [""]


def _miss_targets(miss: dict, add: Callable[[str, str, bool | None], None]) -> None:
    if "pixline" not in miss or "thumbor" not in miss:
        return
    p, t = miss["pixline"], miss["thumbor"]
    add("miss: CPU per image ≤ thumbor's", f"{p['cpu_ms_per_ok']:.1f} vs {t['cpu_ms_per_ok']:.1f} ms",
        p["cpu_ms_per_ok"] <= t["cpu_ms_per_ok"])
    # Against thumbor's best round: its two processes sometimes hold every connection in one
    # (bench/README.md), which halves a round; its median may be that mode.
    best = t["rps_range"][1]
    add("miss: throughput ≥ 1.5× thumbor's (its best round)",
        f"{p['rps'] / best:.2f}× ({p['rps'] / t['rps']:.2f}× its median)", p["rps"] >= 1.5 * best)
    add("miss: p95 < 180 ms at c=16", f"{p['p95_ms']:.0f} ms", p["p95_ms"] < 180)
    add("miss: no 503 at c=16", f"{p['errors']} error responses", p["errors"] == 0)
    if "pixline, originals" in miss:
        o = miss["pixline, originals"]
        add("(for reference, not a target) miss from the originals, without reduced copies: CPU per "
            "image; throughput", f"{o['cpu_ms_per_ok']:.1f} vs {t['cpu_ms_per_ok']:.1f} ms; "
            f"{o['rps'] / best:.2f}× thumbor's best round", None)


def targets(r: dict) -> list[str]:
    rows = []

    def add(target: str, measured: str, met: bool | None) -> None:
        rows.append(f"| {target} | {measured} | {'yes' if met else ('no' if met is False else '–')} |")

    _miss_targets(r.get("miss", {}), add)
    if "bytes" in r:
        b = r["bytes"]
        add("bytes no larger than thumbor's at the same quality",
            f"{b['pixline_bytes']:.0f} vs {b['thumbor_bytes']:.0f} B", b["pixline_bytes"] <= b["thumbor_bytes"])
    large = r.get("miss-large", {})
    if "pixline" in large:
        p = large["pixline"]
        if "thumbor" in large:
            t = large["thumbor"]
            best = t["rps_range"][1]
            add("miss-large: throughput ≥ 10× thumbor's (c=4; its best round)", f"{p['rps'] / best:.1f}×",
                p["rps"] >= 10 * best)
        add("miss-large: peak RSS per process < 150 MB (#22)", f"{max(p['peak_rss_mb'])} MB",
            max(p["peak_rss_mb"]) < 150)
        resizer = large.get("pixline, resizer role")
        if resizer:
            add("miss-large, the resizer role (what deploy/ serves misses with): peak RSS per process < 150 MB "
                "(#22)", f"{max(resizer['peak_rss_mb'])} MB", max(resizer["peak_rss_mb"]) < 150)
    if r.get("upload"):
        times = [u["presets_stored_s"] or 1e9 for u in r["upload"]]
        median = statistics.median(times)
        add("upload 18 MP, the first after a fresh start included: every eager preset stored ≤ 2 s (#22)",
            f"{median:.2f} s (median; first round {times[0]:.2f} s, worst {max(times):.2f} s)", max(times) <= 2)
        peak = max(max(u["peak_rss_mb"]) for u in r["upload"])
        add("upload 18 MP: peak RSS per serving process < 200 MB (#22)", f"{peak} MB", peak < 200)
    _hit_targets(r.get("hit", {}), add)
    one = r.get("one-upload")
    if one:
        ratio = one["every_preset_wall_s"] / one["largest_alone_wall_s"]
        add("one upload: every eager preset ≤ 1.5× the largest alone (wall time, in process)",
            f"{ratio:.2f}× ({one['every_preset_wall_s']:.2f} vs {one['largest_alone_wall_s']:.2f} s; CPU "
            f"{one['every_preset_cpu_s']:.2f} vs {one['largest_alone_cpu_s']:.2f} s)", ratio <= 1.5)
    stream = r.get("eager-stream", {})
    if stream.get("pixline"):
        ours = statistics.median(x["images_per_s"] for x in stream["pixline"])
        raw = statistics.median(x["images_per_s"] for x in stream["raw"])
        add("eager-stream ≥ 0.9× raw pyvips", f"{ours / raw:.2f}×", ours >= 0.9 * raw)
    _analyser_targets(r.get("analysers"), add)
    _auto_quality_targets(r.get("auto-quality"), add)
    return ["| target (issue #10, or the issue named) | measured | met |", "| --- | --- | --- |", *rows, ""]


def _hit_targets(hit: dict, add: Callable[[str, str, bool | None], None]) -> None:
    if "bare falcon" not in hit:
        return
    bare, files, s3 = hit["bare falcon"], hit["pixline files"], hit["pixline s3"]
    add("hit on files ≥ 0.8× the bare falcon app (#22)", f"{files['rps'] / bare['rps']:.2f}× (CPU per "
        f"response {_ratio(files['cpu_ms_per_ok'], bare['cpu_ms_per_ok'])})", files["rps"] >= 0.8 * bare["rps"])
    add("hit on files: p99 < 50 ms", f"{files['p99_ms']:.0f} ms", files["p99_ms"] < 50)
    bare_s3 = hit.get("bare falcon s3")
    if bare_s3:
        add("hit on SeaweedFS ≥ 0.8× the bare falcon app doing the same S3 GET with the same client (#22)",
            f"{s3['rps'] / bare_s3['rps']:.2f}× (CPU per response "
            f"{_ratio(s3['cpu_ms_per_ok'], bare_s3['cpu_ms_per_ok'])})", s3["rps"] >= 0.8 * bare_s3["rps"])
    add("hit on SeaweedFS ≥ 1000 req/s", f"{s3['rps']:.0f} req/s", s3["rps"] >= 1000)


def _analyser_targets(a: dict | None, add: Callable[[str, str, bool | None], None]) -> None:
    placeholders = (a or {}).get("results", {}).get("placeholders")
    if placeholders:
        o = placeholders["overall"]
        add("placeholders: ≤ 10 ms of CPU per upload, every photo and round (#21)",
            f"{o['median_ms']:.1f} ms median, {o['max_ms']:.1f} ms max", o["max_ms"] <= 10)


def _auto_quality_targets(a: dict | None, add: Callable[[str, str, bool | None], None]) -> None:
    for row in (a or {}).get("rows", []):
        name = f"auto-quality {row['format']} at {row['width']} px"
        add(f"{name}: every output within 1 point of its target (#21)", f"worst {row['auto_min_score']:.1f}",
            row["auto_min_score"] >= a["target"] - 1)
        add(f"{name}: bytes ≤ 0.85× the one fixed quality every photo needs (#21)",
            f"{row['ratio_to_fixed']:.3f}×", row["ratio_to_fixed"] <= 0.85)
        add(f"{name}: CPU ≤ 1.5× the fixed-quality render (#21)", f"{row['auto_cpu'] / row['q80_cpu']:.1f}×",
            row["auto_cpu"] <= 1.5 * row["q80_cpu"])


def render(r: dict) -> str:
    m = r["machine"]
    today = datetime.date.today().isoformat()
    out = [
        "# Benchmark results", "",
        f"The latest `make bench` (`bench/run.py --peer thumbor`), {today}, {r.get('bench_seconds', '?')} s in all.",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gb']} GB, load average "
        f"{m['load_average_at_start']} at the start (a machine shared with other work); libvips {r['libvips']} "
        "(pyvips-binary wheel); thumbor 7.8.0 with Pillow, 2 processes.",
        "",
        f"Throughput and latency are medians over {r['args']['rounds']} interleaved rounds; CPU is what the "
        "kernel charged the server's processes (/proc/<pid>/stat) per successful response; every miss "
        "URL is new to both servers. How to read them: [README](README.md).", "",
        "## Targets", "", *targets(r), "## Scenarios", ""]
    if "engine" in r:
        e = r["engine"]
        out += ["### engine (in process, one thread of requests, TwoWings.jpg → 300–329 px JPEG q80)", "",
                f"pixline.engine.render {e['pixline_cpu_ms']:.1f} ms CPU vs raw pyvips thumbnail + jpegsave "
                f"{e['raw_cpu_ms']:.1f} ms (median of {e['n']}): {_ratio(e['pixline_cpu_ms'], e['raw_cpu_ms'])}", ""]
    out += analysers_section(r.get("analysers"))
    out += auto_quality_section(r.get("auto-quality"))
    if "miss" in r:
        out += load_table("miss: 2–5 MP photos → 300–339 px JPEG q80, c=16", r["miss"],
                          "thumbor" if "thumbor" in r["miss"] else None)
    if "miss-large" in r:
        out += load_table("miss-large: 18 MP progressive JPEG → 300–339 px JPEG q80, c=4", r["miss-large"],
                          "thumbor" if "thumbor" in r["miss-large"] else None)
    if "bytes" in r:
        b = r["bytes"]
        out += ["### bytes per response", "",
                f"The same {b['outputs']} outputs (each photo at 300, 320, 340, 600 and 1200 px, JPEG q80): "
                f"pixline {b['pixline_bytes']:.0f} B, thumbor {b['thumbor_bytes']:.0f} B on average "
                f"({_ratio(b['pixline_bytes'], b['thumbor_bytes'])}).", ""]
    if "hit" in r:
        hit = {k: v for k, v in r["hit"].items() if isinstance(v, dict)}
        title = f"hit: stored derivatives ({r['hit']['body_bytes']} B), c=32"
        files = {k: v for k, v in hit.items() if "s3" not in k}
        s3 = {k: v for k, v in hit.items() if "s3" in k}
        out += load_table(f"{title}, on files", files, "bare falcon")
        out += load_table(f"{title}, on SeaweedFS", s3, "bare falcon s3" if "bare falcon s3" in s3 else None)
    out += converter_section(r)
    return "\n".join(out) + "\n"


def converter_section(r: dict) -> list[str]:
    out = []
    stream = r.get("eager-stream")
    if stream and "skipped" in stream:
        out += ["### eager-stream", "", f"Skipped: {stream['skipped']}.", ""]
    elif stream:
        out += [f"### eager-stream: {stream['photos']} uploads (1–5 MP), {stream['outputs_per_image']} "
                "outputs each, RabbitMQ + one `pixline worker` vs raw pyvips in 2 processes", "",
                "| round | pixline images/s (CPU s per image) | raw pyvips images/s (CPU s per image) | ratio |",
                "| --- | --- | --- | --- |"]
        for i, (p, q) in enumerate(zip(stream["pixline"], stream["raw"])):
            out.append(f"| {i + 1} | {p['images_per_s']:.2f} ({p['cpu_s_per_image']:.2f}) | "
                       f"{q['images_per_s']:.2f} ({q['cpu_s_per_image']:.2f}) | "
                       f"{p['images_per_s'] / q['images_per_s']:.2f}× |")
        peaks = max(x["peak_rss_mb"][0] for x in stream["pixline"])
        out += ["", f"pixline's largest process peaked at {peaks} MB.", ""]
    if r.get("upload"):
        out += ["### upload: one 18 MP progressive JPEG", "",
                "| round | 201 after, s | every eager preset stored after, s | server CPU, s | peak RSS per process, MB |",
                "| --- | --- | --- | --- | --- |"]
        for i, u in enumerate(r["upload"]):
            out.append(f"| {i + 1} | {u['answered_s']:.2f} | {_f(u['presets_stored_s'], 2)} | {u['cpu_s']:.2f} | "
                       f"{', '.join(map(str, u['peak_rss_mb']))} |")
        out.append("")
    return out


def analysers_section(a: dict | None) -> list[str]:
    """The analysers' CPU per upload: by set, overall, then each set's median (max) on each photo."""
    if not a:
        return []
    names = list(a["photos"])
    out = [f"### analysers: CPU per upload on the 768 px reduced copy (in process, {a['repeats']} rounds "
           "interleaved, from the copy's pixels as an upload has them)", "",
           "| analyser set | median CPU ms per upload | max | photos |", "| --- | --- | --- | --- |"]
    for label, res in a["results"].items():
        o = res["overall"]
        out.append(f"| {label} | {o['median_ms']:.2f} | {o['max_ms']:.2f} | {len(res['per_photo'])} |")
    out += ["", "| analyser set | " + " | ".join(f"{n} ({a['photos'][n]})" for n in names) + " |",
            "| --- |" + " --- |" * len(names)]
    for label, res in a["results"].items():
        cells = [f"{res['per_photo'][n]['median_ms']:.2f} ({res['per_photo'][n]['max_ms']:.2f})" for n in names]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    sets = ", ".join(f"{label}: {' '.join(members)}" for label, members in a["sets"].items() if len(members) > 1)
    return out + ["", f"Median (max) CPU ms per photo. Sets: {sets}.", ""]


def auto_quality_section(a: dict | None) -> list[str]:
    """quality: auto per format: bytes against the one fixed quality every photo needs, q80 and thumbor."""
    if not a:
        return []
    out = [f"### auto-quality: `quality: auto` (SSIMULACRA 2 ≥ {a['target']:g}) on {len(a['photos'])} photos, "
           "in process",
           "", "Scores: pixline-ssimulacra2 against the same steps' unencoded output; min = the worst photo. "
           "\"one fixed q\": the lowest quality at which every photo reaches the target. CPU: the renders' sum.", "",
           "| width | format | auto bytes (min score) | one fixed q: bytes (min score) | auto ÷ fixed | q80 bytes "
           "(min score) | thumbor q80 bytes (min score) | CPU auto ÷ q80 | median trials |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in a["rows"]:
        theirs = (f"{row['thumbor_bytes']} ({row['thumbor_min_score']:.1f})"
                  if row.get("thumbor_bytes") else "n/a")
        out.append(f"| {row['width']} | {row['format']} | {row['auto_bytes']} ({row['auto_min_score']:.1f}) | "
                   f"q{row['fixed_quality']}: {row['fixed_bytes']} ({row['fixed_min_score']:.1f}) | "
                   f"{row['ratio_to_fixed']:.3f} | {row['q80_bytes']} ({row['q80_min_score']:.1f}) | {theirs} | "
                   f"{row['auto_cpu'] / row['q80_cpu']:.1f} | {row['auto_trials_median']:g} |")
    return out + [""]
