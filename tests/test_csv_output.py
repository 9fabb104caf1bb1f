"""`-f csv`: one column per value, readable by any CSV reader. Nested objects (`decode_step`, `prefill`) become
`decode_step_compute_s`, ... columns; lists become JSON arrays; never a Python repr."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from tpplan.report.output import emit_csv

MIXTRAL = ("-m", "mixtral", "-g", "8", "--hardware", "dgx-h100", "--batch", "8")
STEP = ("compute_s", "communication_s", "overhead_s", "total_s")


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}_")
        else:
            out[prefix + k] = v
    return out


def _same(cell: str, value: Any) -> bool:
    """The CSV cell holds the JSON value: blank for null, JSON for a list, repr-exact numbers."""
    if value is None:
        return cell == ""
    if isinstance(value, bool):
        return cell == str(value)
    if isinstance(value, int | float):
        return float(cell) == value
    if isinstance(value, list):
        return json.loads(cell) == value
    return cell == value


def _layout(row: dict[str, Any]) -> tuple:
    return tuple(str(row.get(k)) for k in ("tp", "pp", "replicas", "ep", "dp_attention", "etp"))


def _check(rows: list[dict[str, str]], objects: list[dict[str, Any]]) -> None:
    assert rows and len(rows) == len(objects)
    header = set(rows[0])
    assert {f"{group}_{k}" for group in ("decode_step", "prefill") for k in STEP} <= header
    assert not {"decode_step", "prefill"} & header
    assert not any("{'" in cell or "['" in cell for r in rows for cell in r.values())  # no Python reprs
    by_layout = {_layout(r): r for r in rows}
    assert len(by_layout) == len(rows)
    for obj in objects:
        row = by_layout[_layout({k: ("" if v is None else v) for k, v in obj.items()})]
        for key, value in _flat(obj).items():
            assert _same(row[key], value), (key, row[key], value)


def test_recommend_csv_flattens_the_step_splits_into_columns_equal_to_the_json(run_cli):
    d = run_cli("recommend", *MIXTRAL, "-f", "json").json()
    r = run_cli("recommend", *MIXTRAL, "-f", "csv")
    assert r.code == 0
    _check(list(csv.DictReader(io.StringIO(r.out))), d["candidates"])


def test_compare_csv_flattens_the_step_splits_into_columns_equal_to_the_json(run_cli):
    layouts = ("8", "8+ep8", "1+dp8+ep8", "2x4")
    d = run_cli("compare", *MIXTRAL, *layouts, "-f", "json").json()
    r = run_cli("compare", *MIXTRAL, *layouts, "-f", "csv")
    assert r.code == 0
    _check(list(csv.DictReader(io.StringIO(r.out))), d["layouts"])


def test_rows_without_a_nested_value_leave_its_columns_blank(capsys):
    emit_csv([{"a": 1, "d": None, "l": []},
              {"a": 2, "d": {"x": 1.5, "y": {"z": "s,t"}}, "l": ["p", "q"], "late": True}])
    out = capsys.readouterr().out
    assert list(csv.reader(io.StringIO(out))) == [
        ["a", "d_x", "d_y_z", "l", "late"],
        ["1", "", "", "[]", ""],
        ["2", "1.5", "s,t", '["p", "q"]', "True"],
    ]


@pytest.mark.parametrize("command", [("models", "list"), ("profiles", "list")])
def test_list_columns_are_json_arrays(run_cli, command):
    rows = list(csv.DictReader(io.StringIO(run_cli(*command, "-f", "csv").out)))
    objects = run_cli(*command, "-f", "json").json()
    assert len(rows) == len(objects)
    for row, obj in zip(rows, objects, strict=True):
        for key, value in obj.items():
            assert _same(row[key], value), (key, row[key], value)


def _header(run_cli, *args: str) -> list[str]:
    r = run_cli(*args, "-f", "csv")  # exit 1 when nothing runs: the document is printed all the same
    assert r.out, r.err
    return next(csv.reader(io.StringIO(r.out)))


def test_the_csv_header_is_the_same_whether_or_not_rows_carry_step_times(run_cli):
    """Training rows (no decode / prefill split) and a compare of two layouts carry the same eight step columns,
    empty, as a serving recommend whose rows have them."""
    steps = [f"{k}_{f}" for k in ("decode_step", "prefill") for f in ("compute_s", "communication_s", "overhead_s",
                                                                       "total_s")]
    serving = _header(run_cli, "recommend", "-m", "llama-8b", "--gpus", "8")
    training = _header(run_cli, "recommend", "-m", "llama-8b", "--gpus", "8", "--workload", "train")
    compared = _header(run_cli, "compare", "-m", "qwen-7b", "--gpus", "8", "8", "8x1x1")  # both refused: no times
    for header in (serving, training, compared):
        assert [h for h in header if h in steps] == steps
        assert header[:2] == ["model", "hardware"]
    assert serving[-2:] == ["recommended", "chosen"]


def test_the_csv_marks_the_tp_layout_row(run_cli):
    """`--tp 3` (refused: 64 heads) is an extra first row; `chosen` tells it apart from the candidates."""
    r = run_cli("recommend", "-m", "llama-70b", "--gpus", "8", "--tp", "3", "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(r.out)))
    assert [row["chosen"] for row in rows].count("True") == 1 and rows[0]["chosen"] == "True"
    assert rows[0]["tp"] == "3" and rows[0]["feasible"] == "False"
    assert len(rows) == len(run_cli("recommend", "-m", "llama-70b", "--gpus", "8", "--tp", "3", "-f",
                                    "json").json()["candidates"]) + 1
