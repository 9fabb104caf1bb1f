"""Benchmarks (not timed tests): cold wall time of `tpplan recommend`, profile load time, sweep throughput.

    .venv/bin/python benchmarks/bench_recommend.py     (or: make bench)

Prints medians over repeated cold runs, and the ratios issue 13 asks for, on the same machine in the same run:
`tpplan recommend --model llama-70b --gpus 8` within 1.3x and `tpplan --help` within 1.15x of the cold start of
`python -c "import typer, rich.table, yaml"` (the libraries a typer + rich + YAML CLI cannot avoid). Other
targets: profile load < 20 ms, > 1,000,000 candidate evaluations/s in the vectorised sweep path.

The three cold commands run interleaved (baseline, --help, recommend, baseline, ...) so that load from other
processes on a shared machine falls on all three alike; each is reported as wall time and as CPU time (user + sys
of the child, from getrusage), which other processes disturb far less. tpplan's modules are byte-compiled first,
as `pip install` does for a wheel: under PYTHONDONTWRITEBYTECODE=1 an editable checkout would otherwise compile
every module from source on every run while typer, rich and yaml load their installed .pyc files.
"""

from __future__ import annotations

import compileall
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def cold_run(argv: list[str]) -> tuple[float, float]:
    """(wall s, CPU s) of one run of argv; CPU is the child's user + sys time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def interleaved(commands: dict[str, list[str]], n: int) -> dict[str, tuple[list[float], list[float]]]:
    """n rounds of one cold run of each command in turn: label -> (wall times, CPU times)."""
    out: dict[str, tuple[list[float], list[float]]] = {label: ([], []) for label in commands}
    for _ in range(n):
        for label, argv in commands.items():
            wall, cpu = cold_run(argv)
            out[label][0].append(wall)
            out[label][1].append(cpu)
    return out


def report(label: str, times: list[float], kind: str = "wall") -> None:
    q = statistics.quantiles(times, n=4)
    print(f"{label}: {kind} median {statistics.median(times):.3f} s (p25 {q[0]:.3f}, p75 {q[2]:.3f}, "
          f"n={len(times)})")


def byte_compile() -> None:
    """Write .pyc files for tpplan's packages (what pip does for an installed wheel)."""
    for package in ("tpplan", "tpplan.hardware_profiles", "tpplan.kernels"):
        for folder in importlib.util.find_spec(package).submodule_search_locations:
            compileall.compile_dir(folder, quiet=1)


def main() -> None:
    n = int(os.environ.get("BENCH_RUNS", "21"))
    byte_compile()
    tpplan = str(BIN / "tpplan")
    base_label, help_label = "python -c 'import typer, rich.table, yaml' (baseline)", "tpplan --help (cold)"
    rec_label = "tpplan recommend --model llama-70b --gpus 8 (cold)"
    runs = interleaved({base_label: [sys.executable, "-c", "import typer, rich.table, yaml"],
                        help_label: [tpplan, "--help"],
                        rec_label: [tpplan, "recommend", "--model", "llama-70b", "--gpus", "8"]}, n)
    print(f"load average (1, 5, 15 min) after the runs: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} CPUs")
    for label, (walls, cpus) in runs.items():
        report(label, walls)
        report(label, cpus, kind="CPU")
    for kind, idx in (("wall", 0), ("CPU", 1)):
        base = statistics.median(runs[base_label][idx])
        print(f"ratio recommend / baseline ({kind}): {statistics.median(runs[rec_label][idx]) / base:.2f} "
              f"(target <= 1.30)")
        print(f"ratio --help / baseline ({kind}): {statistics.median(runs[help_label][idx]) / base:.2f} "
              f"(target <= 1.15)")
    report("tpplan models show llama-70b (cold)", [cold_run([tpplan, "models", "show", "llama-70b"])[0]
                                                  for _ in range(n)])

    from tpplan.hardware.loader import load_profile_text

    text = (Path(__file__).resolve().parents[1] / "hardware_profiles" / "dgx-h100.yaml").read_text()
    for validate in (False, True):
        start = time.perf_counter()
        load_profile_text(text, origin="bench", validate=validate)
        first = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(200):
            load_profile_text(text, origin="bench", validate=validate)
        warm = (time.perf_counter() - start) / 200
        kind = "validated (user file)" if validate else "built-in (pre-validated)"
        print(f"profile load, {kind}: first {first * 1e3:.1f} ms (includes imports), then {warm * 1e3:.2f} ms")

    from tpplan.planner.sweep import sweep

    df, stats = sweep(models=["llama-70b", "mixtral"], hardware=["dgx-h100"], gpus=[8],
                      batches=list(range(1, 257)), input_lens=list(range(128, 8193, 128)),
                      output_lens=[64, 128, 256, 512, 1024, 2048])
    print(f"sweep: {stats.rows:,} candidate evaluations; vectorised cost model {stats.rows / stats.evaluate_s:,.0f}/s; "
          f"end to end incl. DataFrame {stats.rows / stats.total_s:,.0f}/s ({stats.total_s:.2f} s)")


if __name__ == "__main__":
    main()
