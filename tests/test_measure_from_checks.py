"""`tpplan measure --from FILE`: a saved measurement that was edited, truncated or written by another tool is one
error line naming the file, the JSON path of the bad value and what was expected -- never a traceback from the
fit, and never a negative or NaN time fed into the calibration."""

from __future__ import annotations

import copy
import json

import pytest

ENV = {"backend": "gloo", "world_size": 2, "torch": "2.13.0+cpu", "python": "3.11", "host": "ci", "cuda": None,
       "nccl": None, "device_names": ["x86_64"], "cpu_threads_per_rank": 1}
TIMES = {4096: 0.00101, 16384: 0.00104, 65536: 0.00129, 262144: 0.00123, 1048576: 0.00138}
"""Loopback all-reduce times of a 2-rank gloo run (the shape kernels/collectives.py writes)."""


def _raw() -> list[dict]:
    items = [{"kind": "allreduce", "tp": 2, "bytes": b, "dtype": "fp32", "iters": 10, "windows": 5, "best_s": t,
              "median_s": t, "p25_s": t, "measured_s": t, "timing": "back_to_back+perf_counter", "correct": True}
             for b, t in TIMES.items()]
    return [{"workload": "collectives", "environment": dict(ENV), "items": items}]


def _write(tmp_path, data) -> str:
    p = tmp_path / "raw.json"
    p.write_text(json.dumps(data))
    return str(p)


def test_a_valid_saved_run_compares(run_cli, tmp_path):
    r = run_cli("measure", "--from", _write(tmp_path, _raw()), "-f", "json")
    assert r.code == 0, r.err
    assert {it["kind"] for it in r.json()["items"]} >= {"allreduce"}


def _set(path: str, value):
    def edit(d):
        *keys, last = path.split(".")
        obj = d
        for k in keys:
            obj = obj[int(k)] if k.isdigit() else obj[k]
        key = int(last) if last.isdigit() else last
        if value is KeyError:
            del obj[key]
        else:
            obj[key] = value
    return edit


FIX = "pass the JSON tpplan measure wrote (--save-raw, --format json or a kernel's --out), unedited"


@pytest.mark.parametrize("edit,line", [
    (_set("0.items.0.bytes", KeyError), "results[0].items[0].bytes is None; each allreduce item needs a whole number "
                                        ">= 0"),
    (_set("0.items.0.tp", "two"), "results[0].items[0].tp is 'two'; each allreduce item needs a whole number >= 1"),
    (_set("0.items.0.measured_s", -1.0), "results[0].items[0].measured_s is -1.0; a measured time is a finite number "
                                         "of seconds > 0"),
    (_set("0.items.1.measured_s", float("nan")), "results[0].items[1].measured_s is nan; a measured time is a finite "
                                                 "number of seconds > 0"),
    (_set("0.items.1.best_s", -5), "results[0].items[1].best_s is -5; a measured time is a finite number of seconds "
                                   "> 0"),
    (_set("0.items.0.kind", "weird"), "results[0].items[0].kind is 'weird', not one of allreduce, allgather, "
                                      "reducescatter, matmul, layer, memory, kernel_matmul, kernel_attention"),
    (_set("0.items.0.dtype", "fp7"), "results[0].items[0].dtype is 'fp7', not one of bf16, fp16, fp32"),
    (_set("0.environment", KeyError), "results[0].environment is missing or has no 'backend' (the run's gloo / nccl "
                                      "and devices)"),
    (_set("0.items", {}), "results[0].items is dict, not a list of measured items"),
    (_set("0.items.0", "allreduce"), "results[0].items[0] is str, not an object"),
    (_set("0.workload", "bogus"), "results[0].workload is 'bogus', not one of collectives, tp_layer, kernel_table"),
])
def test_a_bad_saved_run_is_one_line(refusal, tmp_path, edit, line):
    data = copy.deepcopy(_raw())
    edit(data)
    path = _write(tmp_path, data)
    assert refusal("measure", "--from", path) == f"Error: {path}: {line}; {FIX}"


def test_a_file_from_before_measured_s_is_read_with_its_p25(run_cli):
    """docs/validation/cpu-gloo-2026-11-23.json predates `measured_s`: its items' p25_s, the statistic that version
    fitted, stands in, so the committed validation run can be compared again."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "docs/validation/cpu-gloo-2026-11-23.json"
    r = run_cli("measure", "--from", str(path), "-f", "json")
    assert r.code == 0, r.err
    items = r.json()["items"]
    assert items and all(i["measured_s"] > 0 for i in items if i["kind"] != "memory")
