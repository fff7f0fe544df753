"""Child processes for the benchmark: the server under test and the load generators.

Each child gets its own process group, so stopping it also stops anything it spawned,
and every start is paired with a stop in a ``finally``: an interrupted or failed run
leaves nothing listening.
"""

from __future__ import annotations

import json
import math
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx

from bench.report import PhaseResult, merge
from simulators.server import free_port

ROOT = Path(__file__).resolve().parent.parent
_CLK_TCK = os.sysconf("SC_CLK_TCK")

__all__ = ["ROOT", "Process", "Server", "free_port", "run_loadgens", "wait_for_quiet"]


class Process:
    """A child in its own session; ``stop()`` is safe to call twice and after a crash."""

    def __init__(self, argv: list[str], *, env: dict[str, str], cwd: Path, log: Path,
                 pipes: bool = False) -> None:
        self.argv, self.env, self.cwd, self.log_path, self.pipes = argv, env, cwd, log, pipes
        self.popen: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None

    def start(self) -> Process:
        self._log = self.log_path.open("w", encoding="utf-8")
        pipe = subprocess.PIPE if self.pipes else subprocess.DEVNULL
        self.popen = subprocess.Popen(
            self.argv, env=self.env, cwd=self.cwd, stdin=pipe,
            stdout=pipe if self.pipes else self._log, stderr=self._log,
            text=True, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def cpu_seconds(self) -> float:
        """User+system CPU the process has used so far (from /proc)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return math.nan
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def send_line(self, line: str) -> None:
        assert self.popen is not None and self.popen.stdin is not None
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()

    def read_line(self, deadline: float) -> str:
        """Next stdout line, or RuntimeError if none arrives before ``deadline``."""
        assert self.popen is not None and self.popen.stdout is not None
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([self.popen.stdout], [], [], max(0.0, remaining))
        line = self.popen.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"{self.argv[2] if len(self.argv) > 2 else self.argv[0]} "
                               f"gave no output in time; log:\n{self.log_tail()}")
        return line.strip()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the whole group (graceful shutdown), SIGKILL if it lingers."""
        if self.popen is None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            if self.popen.poll() is not None:
                break
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        for stream in (self.popen.stdin, self.popen.stdout, self._log):
            if stream is not None:
                stream.close()


class Server:
    """``with Server(proc, url) as s:`` starts ``proc`` and waits for ``GET /readyz``."""

    def __init__(self, proc: Process, url: str, ready_timeout: float = 60.0) -> None:
        self.proc, self.url, self.ready_timeout = proc, url, ready_timeout

    def __enter__(self) -> Server:
        self.proc.start()
        try:
            self._wait_ready()
        except BaseException:
            self.proc.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.stop()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise RuntimeError(f"server exited during startup; log:\n{self.proc.log_tail()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready in {self.ready_timeout:g} s; log:\n"
                           f"{self.proc.log_tail()}")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot: the rest of the machine's load
    (other processes) shows up as busy time that neither server nor loadgen used."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in fields[:8]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / _CLK_TCK


def wait_for_quiet(max_wait: float, threshold: float = 0.25) -> float:
    """Wait (at most ``max_wait`` s) until the machine is nearly idle, so that unrelated
    work does not eat the cores the benchmark shares. Returns the last busy fraction of
    all cores (0..1) seen over a one-second window."""
    deadline = time.monotonic() + max_wait
    cores = os.cpu_count() or 1
    while True:
        before = machine_busy_seconds()
        time.sleep(1.0)
        busy = (machine_busy_seconds() - before) / cores
        if busy < threshold or time.monotonic() >= deadline:
            return busy


def run_loadgens(*, server: Server, env: dict[str, str], workdir: Path, loadgens: int,
                 concurrency: int, client: str, tag: str, count: int, duration: float,
                 rate: float) -> PhaseResult:
    """One phase: ``loadgens`` processes build their share, start together, report back."""
    share = math.ceil(count / loadgens)
    per_proc = ["--concurrency", str(max(1, concurrency // loadgens)), "--client", client,
                "--duration", str(duration), "--rate", str(rate / loadgens)]
    results = [workdir / f"loadgen-{tag}{i}.json" for i in range(loadgens)]
    procs = [Process(_loadgen_argv(server.url, f"{tag}{i}", share,
                                   [*per_proc, "--out", str(results[i])]),
                     env=env, cwd=ROOT, log=workdir / f"loadgen-{tag}{i}.log", pipes=True)
             for i in range(loadgens)]
    try:
        for proc in procs:
            proc.start()
        deadline = time.monotonic() + 120
        for proc in procs:
            if proc.read_line(deadline) != "ready":
                raise RuntimeError(f"loadgen did not get ready; log:\n{proc.log_tail()}")
        cpu_before, busy_before = server.proc.cpu_seconds(), machine_busy_seconds()
        go = time.time() + 0.3
        for proc in procs:
            proc.send_line(f"go {go:.6f}")
        deadline = time.monotonic() + duration + 60
        for proc in procs:
            if proc.read_line(deadline) != "done":
                raise RuntimeError(f"loadgen failed; log:\n{proc.log_tail()}")
        outputs: list[dict[str, Any]] = [json.loads(out.read_text(encoding="utf-8"))
                                         for out in results]
        return merge(outputs, rate, server.proc.cpu_seconds() - cpu_before,
                     machine_busy_seconds() - busy_before)
    finally:
        for proc in procs:
            proc.stop(grace=2.0)


def _loadgen_argv(url: str, tag: str, count: int, options: list[str]) -> list[str]:
    return [sys.executable, "-m", "bench.loadgen", "--url", url, "--tag", tag,
            "--count", str(count), *options]
