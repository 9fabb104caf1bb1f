"""Launch one process per rank on this node, watch them, and collect rank 0's JSON.

Each rank runs `python -m tpplan.kernels.<workload>` with torchrun's environment (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT) in its own session, so that a failure or Ctrl-C can end every rank
and nothing is left behind. A rank that exits non-zero ends the run with a MeasurementError naming the rank
and the tail of its stderr. (Spawning directly costs ~1.7 s for 2 ranks; torchrun ~3.1 s: FACTS.md §8.)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import field
from pathlib import Path

from tpplan.errors import MeasurementError
from tpplan.records import record

STDERR_TAIL_LINES = 12
POLL_S = 0.05
KILL_GRACE_S = 2.0


@record(frozen=False, kw_only=False)
class RankSet:
    """The processes of one launch (kept so tests can check that none survives)."""

    procs: list[subprocess.Popen] = field(default_factory=list)
    stderr_paths: list[Path] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def kill_all(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for p in self.procs:
                if p.poll() is None:
                    try:
                        os.killpg(p.pid, sig)
                    except ProcessLookupError:
                        pass
            deadline = time.monotonic() + KILL_GRACE_S
            while any(p.poll() is None for p in self.procs) and time.monotonic() < deadline:
                time.sleep(POLL_S)
        for p in self.procs:
            if p.poll() is None:
                p.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_ERROR_LINE = re.compile(r"^(?:\[rank\d+\]:\s*)?((?:[\w.]+\.)?\w*(?:Error|Exception|Interrupt)\b.*)$")
"""The exception line of a Python traceback (`RuntimeError: ...`), torch's "[rankN]:" prefix allowed."""
TIMEOUT_WORDS = ("timed out", "timeout")
"""Words of a collective's timeout in the exception line (compared in lower case)."""


def rank_failure(workload: str, rank: int, code: int, codes: list[int | None], stderr_path: Path) -> str:
    """One line for a rank that ended with `code`: killed by which signal, or the exception its traceback ends with
    (not the traceback); when it timed out waiting while other ranks were still running, those ranks are the likely
    culprits (hung or stopped); and what to do."""
    if code < 0:
        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
    else:
        how = f"exited with code {code}"
    if os.environ.get("TPPLAN_DEBUG") == "1":
        return f"{workload}: rank {rank} {how}; its stderr ends: {_tail(stderr_path) or '(empty)'}"
    lines = _lines(stderr_path)
    errors = [m.group(1).strip() for line in lines if (m := _ERROR_LINE.match(line.strip()))]
    said = errors[-1] if errors else (lines[-1].strip() if lines else "")
    said = said if len(said) <= 240 else said[:237] + "..."
    others = [r for r, c in enumerate(codes) if c is None and r != rank]
    if said and any(w in said.lower() for w in TIMEOUT_WORDS) and others:
        who = ", ".join(map(str, others))
        return (f"{workload}: rank {rank} timed out waiting for rank{'s' * (len(others) > 1)} {who}, still running "
                f"(hung or stopped): {said}; check that no process on the node is stopped or starved, raise "
                f"--timeout if the node is busy, or run with --debug to see the end of its stderr")
    return (f"{workload}: rank {rank} {how}" + (f": {said}" if said else " with no message") +
            "; rerun, and if it fails again run with --debug to see the end of the rank's stderr (out of memory, a "
            "faulty device or link: check dmesg, and nvidia-smi on a GPU node)")


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return []


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(lines[-STDERR_TAIL_LINES:])


ENDING_SIGNALS = ("SIGTERM", "SIGHUP")
"""What `timeout`, a batch scheduler or a closed terminal send. Python's default for SIGTERM ends the process at once,
without the `finally` blocks that end the ranks and remove the temporary folder; `ending_on_signals` turns them
into an error that runs them."""


@contextlib.contextmanager
def ending_on_signals():
    """While a measurement runs, SIGTERM / SIGHUP raise a MeasurementError in the main thread (so every rank is ended
    and the temporary folder removed on the way out, as Ctrl-C does); the previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, _frame):
        raise MeasurementError(f"stopped by {signal.Signals(signum).name}: every rank was ended and the temporary "
                               f"folder removed; nothing was written")

    previous = {}
    for name in ENDING_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:  # `nohup` ignores SIGHUP: keep it so
            previous[sig] = signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _signals_deferred():
    """Hold Ctrl-C, SIGTERM and SIGHUP until the block ends, then deliver the first that came to the handler in force
    (KeyboardInterrupt; `ending_on_signals`' error): the ranks are started as a whole or not at all, so the launcher's
    `finally` ends every one of them. Only in the main thread, where Python runs signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    sigs = [signal.SIGINT] + [s for n in ENDING_SIGNALS if (s := getattr(signal, n, None)) is not None
                              and signal.getsignal(s) is not signal.SIG_IGN]
    previous = {s: signal.signal(s, lambda signum, _frame: caught.append(signum)) for s in sigs}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if caught:
            signal.raise_signal(caught[0])


def launch(workload: str, args: list[str], *, nproc: int, timeout_s: float, threads: int = 1,
           env_extra: dict[str, str] | None = None) -> dict:
    """Run `tpplan.kernels.<workload>` on `nproc` local ranks; return rank 0's JSON object. The ranks' stderr
    files and rank 0's JSON live in a temporary folder that is removed on every path, and every rank is ended
    (its whole session) before this returns or raises."""
    if nproc < 1 or timeout_s <= 0:
        raise MeasurementError(f"launch {workload}: nproc ({nproc}) must be >= 1 and timeout_s ({timeout_s}) > 0")
    with tempfile.TemporaryDirectory(prefix="tpplan-measure-") as tmp:
        workdir = Path(tmp)
        out_path = workdir / "rank0.json"
        port = free_port()
        ranks = RankSet()
        try:
            with _signals_deferred():  # a rank started but not yet in `ranks` would outlive a Ctrl-C
                for rank in range(nproc):
                    env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(nproc), "LOCAL_RANK": str(rank),
                           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": str(threads),
                           "PYTHONUNBUFFERED": "1", **(env_extra or {})}
                    err = workdir / f"rank{rank}.stderr"
                    ranks.stderr_paths.append(err)
                    cmd = [sys.executable, "-m", f"tpplan.kernels.{workload}", *args, "--threads", str(threads),
                           "--timeout", str(timeout_s)] + (["--out", str(out_path)] if rank == 0 else [])
                    with err.open("w") as err_file:  # the child keeps its own descriptor; ours closes here
                        ranks.procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err_file,
                                                            start_new_session=True))
            _wait(ranks, workload, timeout_s)
            return _read_result(out_path, workload)
        finally:
            ranks.kill_all()


def _read_result(path: Path, workload: str) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MeasurementError(f"{workload}: rank 0 exited cleanly but wrote no readable result ({exc})") from exc


WAIT_GRACE_S = 30
"""Seconds past --timeout that the launcher waits: the ranks' own process-group timeout fires first."""


def _wait(ranks: RankSet, workload: str, timeout_s: float) -> None:
    start = time.monotonic()
    deadline = start + timeout_s + WAIT_GRACE_S
    while True:
        codes = [p.poll() for p in ranks.procs]
        for rank, code in enumerate(codes):
            if code not in (None, 0):
                ranks.kill_all()
                raise MeasurementError(rank_failure(workload, rank, code, codes, ranks.stderr_paths[rank]))
        if all(code == 0 for code in codes):
            return
        if time.monotonic() > deadline:
            ranks.kill_all()
            raise MeasurementError(f"{workload}: ranks still running {time.monotonic() - start:.0f} s after launch "
                                   f"(--timeout {timeout_s:.0f} s, then {WAIT_GRACE_S} s for the ranks' own timeout); "
                                   f"raise --timeout, or lower --nproc; rank 0's stderr ends: "
                                   f"{_tail(ranks.stderr_paths[0]) or '(empty)'}")
        time.sleep(POLL_S)
