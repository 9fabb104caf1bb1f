"""The README's accuracy summary, written by `make fidelity` from the rows it just compared, so that the figures in
README.md are always the ones the benchmark measured (between the markers below; the prose around them is
hand-written and cites these figures by set name).

Sets: the H100 GPU compute rows; the published TensorRT-LLM rows split into dense models (16-bit and FP8), MoE
models (TP and attention-DP + EP layouts) and FP4 checkpoints (B200, GB200, RTX PRO 6000), then all of them, and
the pipeline-parallel rows among them; the vLLM 0.5.4 rows apart. Error = (predicted - measured) / measured.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable
from pathlib import Path

BEGIN, END = "<!-- fidelity-summary:begin (make fidelity writes this table) -->", "<!-- fidelity-summary:end -->"


def _err(r: dict) -> float:
    return r["predicted"] / r["measured"] - 1


def _pct(x: float | None, signed: bool = True) -> str:
    if x is None:
        return "–"
    text = f"{100 * x:+,.1f}%" if signed else f"{100 * x:,.1f}%"
    return text.replace("-", "−")


def _signed_by(rows: list[dict], key: str, values: tuple[int, ...]) -> str:
    cells = []
    for v in values:
        errs = [_err(r) for r in rows if r[key] == v]
        cells.append(_pct(statistics.median(errs)) if errs else "–")
    return " / ".join(cells)


def _line(name: str, rows: list[dict], order: Callable[[list[dict]], dict] | None) -> str:
    if not rows:
        return f"| {name} | 0 | – | – | – | – |"
    errs = [_err(r) for r in rows]
    worst = max(errs, key=abs)
    agreement = "–"
    if order is not None:
        o = order(rows)
        if o["pairs"]:
            agreement = f"{o['agreement_pct']:.1f}% of {o['pairs']:,} pairs"
    median = _pct(statistics.median(abs(e) for e in errs), signed=False)
    return (f"| {name} | {len(rows):,} | **{median}** | {_pct(worst)} | {_signed_by(rows, 'tp', (1, 2, 4, 8))} "
            f"| {agreement} |")


def summary_markdown(gpu: list[dict], pub: list[dict], vllm: list[dict],
                     order: Callable[[list[dict]], dict], pcie: dict, across: dict | None = None,
                     beyond: list[dict] = (), runtimes: dict[str, str] | None = None,
                     max_utilization: list[dict] = (), ceiling: dict | None = None) -> str:
    """The table and the per-hardware, PCIe, per-PP and beyond-context lines, as markdown. `pcie` is
    fidelity.pcie_tp8_below_tp4's report (groups where a PCIe table shows TP8 slower than TP4, and how many of them
    tpplan reproduces); `across` is fidelity.measured_order_across_releases' (how often two releases' tables order
    the same TP pair alike); `beyond` the rows whose input + output exceeds the model's context (kept apart);
    `runtimes` names the TensorRT-LLM generations a row's "runtime" key can hold (fidelity.RUNTIMES);
    `max_utilization` the rows run under TensorRT-LLM's MAX_UTILIZATION scheduler (kept apart); `ceiling`
    fidelity.release_agnostic_ceiling's report on the 16-bit and FP8 rows."""
    runtimes = runtimes or {}
    fp4 = [r for r in pub if r["precision"] == "FP4"]
    dense = [r for r in pub if r["precision"] != "FP4" and not r["moe"]]
    moe = [r for r in pub if r["precision"] != "FP4" and r["moe"]]
    pipeline = [r for r in pub if r["pp"] > 1]
    lines = ["| data set | rows | median \\|error\\| | worst | signed median per TP (1 / 2 / 4 / 8) "
             "| TP order agreement (per GPU) |", "|---|---|---|---|---|---|",
             _line("H100 GPU compute per decode step / prefill (`data/h100_decode_prefill.csv`)", gpu, None),
             _line("TensorRT-LLM tables 0.11–1.2, dense models, 16-bit and FP8", dense, order),
             _line("the same tables, MoE models (TP and attention-DP + EP layouts)", moe, order),
             _line("dense and MoE together, 16-bit and FP8 (the set the issue-10 targets name)", dense + moe, order),
             _line("the same tables, FP4 checkpoints (B200, GB200, RTX PRO 6000)", fp4, order),
             _line("all TensorRT-LLM rows above", pub, order),
             _line("vLLM 0.5.4, Lambda benchmark (separate set, see below)", vllm, order), ""]
    by_hw = {}
    for r in pub:
        by_hw.setdefault(r["hardware"], []).append(_err(r))
    hw = ", ".join(f"{k} {_pct(statistics.median(v))} ({len(v)})" for k, v in sorted(by_hw.items()))
    lines.append(f"Signed median per hardware, all TensorRT-LLM rows (rows): {hw}.")
    shown, reproduced = pcie["groups_measured_tp8_below_tp4"], pcie["reproduced"]
    lines.append(f"PCIe systems: the tables show TP8 slower than TP4 in {shown} groups; tpplan reproduces "
                 f"{reproduced}.")
    if across and across.get("pairs"):
        lines.append(f"The tables themselves: where two releases measured the same model, GPU, precision, lengths and "
                     f"TP pair, they order it alike in {across['agreement_pct']:.1f}% of {across['pairs']} pairs.")
    if ceiling and ceiling.get("pairs"):
        lines.append(f"What that leaves to the model, 16-bit and FP8: a prediction that does not know the release "
                     f"orders each pair one way in every release, so where releases disagree ({ceiling['split_cells']} "
                     f"cells) only their majority can agree; at best {ceiling['ceiling_pct']:.1f}% of the "
                     f"{ceiling['pairs']} pairs. {ceiling['misordered_in_agreed_cells']} of tpplan's misordered pairs "
                     f"lie in cells that every release orders alike.")
    by_runtime = []
    for runtime, name in runtimes.items():
        rows = [r for r in dense + moe if r.get("runtime") == runtime]
        o = order(rows) if rows else {"pairs": 0}
        if o["pairs"]:
            by_runtime.append(f"{name}: {len(rows):,} row{'s' * (len(rows) != 1)}, median |error| "
                              f"{_pct(statistics.median(abs(_err(r)) for r in rows), signed=False)}, signed per TP "
                              f"{_signed_by(rows, 'tp', (1, 2, 4, 8))}, order {o['agreement_pct']:.1f}% of "
                              f"{o['pairs']} pairs")
    if by_runtime:
        lines.append("By TensorRT-LLM generation, 16-bit and FP8 (the issue-10 set): " + "; ".join(by_runtime) + ".")
    if pipeline:
        lines.append(f"Pipeline-parallel rows ({len(pipeline)}): median |error| "
                     f"{_pct(statistics.median(abs(_err(r)) for r in pipeline), signed=False)}, signed median per "
                     f"PP 2 / 4 / 8: {_signed_by(pipeline, 'pp', (2, 4, 8))}.")
    if beyond:
        by_model = {}
        for r in beyond:
            by_model.setdefault(r["model"], []).append(_err(r))
        models = ", ".join(f"{k} {_pct(statistics.median(v))} ({len(v)})" for k, v in sorted(by_model.items()))
        lines.append(f"Rows whose input + output exceeds the model's context ({len(beyond)}; tpplan refuses such "
                     f"requests, the tables ran them; planned with the context raised and kept out of the sets "
                     f"above): median |error| {_pct(statistics.median(abs(_err(r)) for r in beyond), signed=False)}; "
                     f"signed median per model: {models}.")
    if max_utilization:
        o = order(max_utilization)
        lines.append(f"Rows run under TensorRT-LLM's MAX_UTILIZATION scheduler ({len(max_utilization)}, the 0.10 "
                     f"table; it pauses and re-prefills requests when the KV cache fills, tpplan models the default "
                     f"GUARANTEED_NO_EVICT; kept out of the sets above): median |error| "
                     f"{_pct(statistics.median(abs(_err(r)) for r in max_utilization), signed=False)}, signed median "
                     f"per TP {_signed_by(max_utilization, 'tp', (1, 2, 4, 8))}"
                     + (f", order {o['agreement_pct']:.1f}% of {o['pairs']} pairs." if o["pairs"] else "."))
    return "\n".join(lines)


def update_readme(readme: Path, markdown: str) -> bool:
    """Replace the text between the markers; False (file untouched) when the markers are absent."""
    text = readme.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        return False
    new = pattern.sub(lambda _: f"{BEGIN}\n{markdown}\n{END}", text)
    if new != text:
        tmp = readme.with_suffix(".md.tmp")
        tmp.write_text(new)
        tmp.replace(readme)
    return True
