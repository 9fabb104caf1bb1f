"""Benchmarks (not timed tests): cold wall time of `tpplan recommend`, profile load time, sweep throughput.

    .venv/bin/python benchmarks/bench_recommend.py     (or: make bench)

Prints medians over repeated cold runs, and the ratios issue 13 asks for, on the same machine in the same run:
`tpplan recommend --model llama-70b --gpus 8` within 1.3x and `tpplan --help` within 1.15x of the cold start of
`python -c "import typer, rich.table, yaml"` (the libraries a typer + rich + YAML CLI cannot avoid). Other
targets: profile load < 20 ms, > 1,000,000 candidate evaluations/s in the vectorised sweep path.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def cold_runs(argv: list[str], n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(argv, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def report(label: str, times: list[float]) -> None:
    q = statistics.quantiles(times, n=4)
    print(f"{label}: median {statistics.median(times):.3f} s (p25 {q[0]:.3f}, p75 {q[2]:.3f}, n={len(times)})")


def main() -> None:
    n = int(os.environ.get("BENCH_RUNS", "21"))
    tpplan = str(BIN / "tpplan")
    baseline = cold_runs([sys.executable, "-c", "import typer, rich.table, yaml"], n)
    report("python -c 'import typer, rich.table, yaml' (baseline)", baseline)
    helps = cold_runs([tpplan, "--help"], n)
    report("tpplan --help (cold)", helps)
    recs = cold_runs([tpplan, "recommend", "--model", "llama-70b", "--gpus", "8"], n)
    report("tpplan recommend --model llama-70b --gpus 8 (cold)", recs)
    base = statistics.median(baseline)
    print(f"ratio recommend / baseline: {statistics.median(recs) / base:.2f} (target <= 1.30)")
    print(f"ratio --help / baseline: {statistics.median(helps) / base:.2f} (target <= 1.15)")
    report("tpplan models show llama-70b (cold)", cold_runs([tpplan, "models", "show", "llama-70b"], n))

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
