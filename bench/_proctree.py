"""Timing a command with all its descendants: wall time, peak RSS and CPU, read from /proc."""

from __future__ import annotations

import os
import subprocess
import time


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, float]:
    """Return (wall seconds, peak RSS in MiB, CPU seconds) of a command and all its descendants.

    CPU is sampled from /proc every 0.2 s (workers of a forkserver are not the command's
    children, so its rusage would miss them); the last 0.2 s of a process may be missed.
    The sampling reads only the command's own processes, looking for new ones in all of
    /proc during the first 3 s and then every 2 s, so that it costs the timed command
    next to nothing; the wait ends the moment the command does.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak, cpu_ticks, tree, scanned = 0, {}, [proc.pid], 0.0
    while True:
        now = time.perf_counter()
        if now - start < 3 or now - scanned > 2:
            tree, scanned = descendants(proc.pid), now
        rss, ticks = usage(tree)
        peak = max(peak, rss)
        cpu_ticks.update(ticks)
        try:
            proc.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            continue
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
    return seconds, peak // 1024, sum(cpu_ticks.values()) / os.sysconf("SC_CLK_TCK")


def _stat(pid: int | str) -> list[str]:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()


def descendants(pid: int) -> list[int]:
    """Return ``pid`` and every process below it (a scan of all of /proc)."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_stat(entry.name)[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, stack = [], [pid]
    while stack:
        p = stack.pop()
        tree.append(p)
        stack.extend(c for c, pp in parents.items() if pp == p)
    return tree


def usage(pids: list[int]) -> tuple[int, dict[int, int]]:
    """Return the summed RSS (KiB) of ``pids`` and each one's CPU ticks so far."""
    total, ticks = 0, {}
    for p in pids:
        try:
            fields = _stat(p)
        except OSError:
            continue
        ticks[p] = int(fields[11]) + int(fields[12])
        total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE") // 1024
    return total, ticks
