"""CPU seconds and peak memory of running processes, read from /proc (Linux).

CPU is what the kernel charged to a process (utime + stime in /proc/<pid>/stat), not wall time, so a
figure survives a machine shared with other work. Peak RSS is ``VmHWM`` in /proc/<pid>/status; writing
``5`` to /proc/<pid>/clear_refs resets it, so each scenario gets its own peak.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            text = fh.read()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    return text[text.rindex(")") + 2:].split()


def tree(root: int) -> list[int]:
    """``root`` and every process descended from it."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = _stat(int(name))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(pid: int) -> float:
    fields = _stat(pid)
    if not fields:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15 of stat)


def _status(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class Group:
    """Processes measured together (a server and its workers), found from their root pids."""

    name: str
    roots: list[int]
    _start: dict[int, float] = field(default_factory=dict)

    def pids(self) -> list[int]:
        return sorted({p for root in self.roots for p in tree(root)})

    def cpu(self) -> dict[int, float]:
        return {pid: cpu_seconds(pid) for pid in self.pids()}

    def start(self) -> None:
        """Begin a measurement: remember CPU so far and reset every process's peak RSS."""
        self._start = self.cpu()
        for pid in self._start:
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as fh:
                    fh.write("5")
            except OSError:
                pass

    def cpu_since_start(self) -> float:
        return sum(now - self._start.get(pid, 0.0) for pid, now in self.cpu().items())

    def peak_rss(self) -> dict[int, int]:
        """Peak resident bytes of each process since :meth:`start`."""
        return {pid: _status(pid, "VmHWM") for pid in self.pids()}

    def rss(self) -> dict[int, int]:
        return {pid: _status(pid, "VmRSS") for pid in self.pids()}

    def wait_idle(self, timeout: float = 30.0, rate: float = 0.05) -> float:
        """Wait until the group uses under ``rate`` of a core for half a second; seconds waited."""
        started = time.monotonic()
        before = sum(self.cpu().values())
        while time.monotonic() - started < timeout:
            time.sleep(0.5)
            now = sum(self.cpu().values())
            if now - before < 0.5 * rate:
                break
            before = now
        return time.monotonic() - started


def describe_machine() -> dict[str, object]:
    """What the figures were measured on."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")),
                         model)
    except OSError:
        pass
    memory = _meminfo_total()
    return {"cores": os.cpu_count(), "cpu": model, "memory_gb": round(memory / 2**30, 1),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def _meminfo_total() -> int:
    try:
        with open("/proc/meminfo") as fh:
            return int(fh.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
