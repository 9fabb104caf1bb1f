"""The README's accuracy table is the one `make fidelity` computes (benchmarks/summary.py writes it between
markers), so a figure in the README cannot drift from the model that produced it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import summary  # noqa: E402


def _row(predicted, measured, *, tp=1, pp=1, hw="H100", precision="FP8", moe=False):
    return {"predicted": predicted, "measured": measured, "tp": tp, "pp": pp, "hardware": hw, "precision": precision,
            "moe": moe, "model": "m", "isl": 128, "osl": 128, "engine_version": "1.0"}


def test_summary_medians_and_signs():
    pub = [_row(110, 100, tp=1), _row(90, 100, tp=2), _row(130, 100, tp=2, pp=2), _row(50, 100, precision="FP4")]
    text = summary.summary_markdown([_row(1.0, 1.0)], pub, [], lambda rows: {"pairs": 0, "agreement_pct": None},
                                    {"groups_measured_tp8_below_tp4": 3, "reproduced": 2})
    dense = next(line for line in text.splitlines() if "dense models" in line)
    # |errors| 10, 10, 30 -> median 10%; signed at TP2: median(-10, +30) = +10%
    assert "| 3 | **10.0%** | +30.0% | +10.0% / +10.0% / – / – |" in dense
    assert "FP4 checkpoints (B200, GB200, RTX PRO 6000) | 1 | **50.0%** | −50.0%" in text
    assert "Pipeline-parallel rows (1): median |error| 30.0%, signed median per PP 2 / 4 / 8: +30.0% / – / –." in text
    assert "TP8 slower than TP4 in 3 groups; tpplan reproduces 2." in text


def test_summary_splits_the_issue_10_set_by_tensorrt_llm_generation():
    pub = [_row(110, 100, tp=1) | {"runtime": "new"}, _row(80, 100, tp=2) | {"runtime": "new"},
           _row(100, 100, tp=1) | {"runtime": "old"}, _row(50, 100, precision="FP4") | {"runtime": "new"}]
    text = summary.summary_markdown([_row(1.0, 1.0)], pub, [], lambda rows: {"pairs": len(rows), "agreement_pct": 50.0},
                                    {"groups_measured_tp8_below_tp4": 0, "reproduced": 0},
                                    runtimes={"new": "New backend", "old": "Old engines"})
    line = next(line for line in text.splitlines() if line.startswith("By TensorRT-LLM generation"))
    # the FP4 row stays out: New backend has the +10% and -20% rows, Old engines the exact one
    assert ("New backend: 2 rows, median |error| 15.0%, signed per TP +10.0% / −20.0% / – / –, order 50.0% of 2 pairs; "
            "Old engines: 1 row, median |error| 0.0%") in line


def test_update_readme_rewrites_only_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{summary.BEGIN}\nold table\n{summary.END}\noutro\n")
    assert summary.update_readme(readme, "new table")
    assert readme.read_text() == f"intro\n{summary.BEGIN}\nnew table\n{summary.END}\noutro\n"
    other = tmp_path / "OTHER.md"
    other.write_text("no markers\n")
    assert not summary.update_readme(other, "x") and other.read_text() == "no markers\n"


@pytest.mark.timeout(120)
def test_readme_accuracy_table_is_what_the_benchmark_computes_now():
    import fidelity

    pub, beyond, max_util, _ = fidelity.published_sets()
    vllm, _ = fidelity.vllm_rows()
    no_fp4 = [r for r in pub if r["precision"] != "FP4"]
    expected = summary.summary_markdown(fidelity.gpu_rows(), pub, vllm, fidelity.order_agreement,
                                        fidelity.pcie_tp8_below_tp4(pub),
                                        fidelity.measured_order_across_releases(no_fp4), beyond, fidelity.RUNTIMES,
                                        max_util, fidelity.release_agnostic_ceiling(no_fp4))
    text = (ROOT / "README.md").read_text()
    table = text[text.index(summary.BEGIN) + len(summary.BEGIN) + 1:text.index(summary.END) - 1]
    assert table == expected, "README accuracy table is stale: run `make fidelity` and commit README.md"
