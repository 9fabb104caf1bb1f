"""Where a published TensorRT-LLM row's predicted step time goes: the continuous-batching step tpplan predicts
for the row's layout, split into its terms (tpplan.cost.steady.steady_state_terms), beside the step the measured
throughput implies at the same batch (batch / measured output tokens/s), and the engine limits the row ran with.

    .venv/bin/python benchmarks/step_breakdown.py --model "Llama 3.1 8B" --hardware H100 --tp 1

    .venv/bin/python benchmarks/step_breakdown.py --model "Llama 4 Maverick" --hardware H200

Milliseconds per step. A term is too large where removing the gap would need more than that term. MoE rows run
their published layout (TP, or DEPn: attention DP + EP, whose terms are one DP rank's step); moe_routed is the
routed experts' grouped GEMMs and routing kernels, a part of mlp. The 16-bit and FP8 rows unless --fp4.
Both steps are steady-state ones: "predicted" here is the steady state of the row's batch, not the whole run that
`make fidelity` compares (a run of a few waves ends in an under-filled one, `recommend --num-requests`), so where
the run had few waves the implied step carries that tail too.
"""

from __future__ import annotations

import argparse
import csv

import fidelity as F

from tpplan.cost.batching import prefill_tokens_per_step
from tpplan.cost.coefficients import coefficients
from tpplan.cost.steady import prefill_room_tokens, prefill_units, steady_state_terms
from tpplan.cost.step import routed_experts_s
from tpplan.hardware.loader import resolve_profile
from tpplan.planner.candidates import engine_limits
from tpplan.planner.plan import recommend
from tpplan.planner.workload import WORKLOAD_DEFAULTS
from tpplan.units import s_to_ms

TERMS = ("attention_projections_s", "mlp_s", "elementwise_s", "decode_attention_s", "prefill_attention_s",
         "lm_head_s", "communication_s", "overhead_s")


def breakdown(r: dict) -> dict | None:
    """Predicted and implied step and the predicted terms of one published row without PP (None: left out). MoE
    rows run the row's layout (TP, or attention DP + EP: the terms are one DP rank's step at batch / dp)."""
    tp, pp = int(r["tp"] or 1), int(r["pp"] or 1)
    if F._why_excluded(r) or pp != 1 or r["model"] not in F.MODELS:
        return None
    dtype, kv = F._dtypes(r)
    isl, osl = int(r["isl"]), int(r["osl"])
    model, _ = F._as_run(F.MODELS[r["model"]], isl + osl)
    limits = F._engine_settings(r, tp=tp, pp=1, dtype=dtype, kv_dtype=kv)
    plan = recommend(F.trtllm_model(model), hardware=F.HARDWARE[r["hardware"]], gpus=tp, engine="trtllm",
                     dtype=dtype, kv_cache_dtype=kv, input_len=isl, output_len=osl, max_model_len=isl + osl,
                     allow_cross_domain_tp=True, **limits,
                     batch=F.num_requests(r))
    lay_tp, dp, ep = F._moe_layout(r, tp)
    layout = (lay_tp, dp, ep, 1, 1)
    cand = F._layout_candidate(plan, layout)
    if cand is None or not cand.feasible:
        return None
    profile = resolve_profile(F.HARDWARE[r["hardware"]])[0]
    c = coefficients(plan.model, profile, tp=lay_tp, dtype=dtype, kv_cache_dtype=kv, engine="trtllm", ep=ep,
                     dp_attention=dp, moe_imbalance=WORKLOAD_DEFAULTS.moe_imbalance)
    b = cand.batch / dp
    budget = engine_limits(profile, plan.workload).max_num_batched_tokens
    chunk = prefill_tokens_per_step(batch=b, input_len=isl, output_len=osl)
    terms = steady_state_terms(c, profile, batch=b, context_len=isl + osl / 2, input_len=isl, prefill_tokens=chunk,
                               token_budget=budget, lockstep_ranks=dp)
    measured = float(r["value"]) * (tp if r["metric"] == "output_throughput_per_gpu" else 1)
    units = prefill_units(prefill_tokens=chunk, input_len=isl,
                          room_tokens=prefill_room_tokens(c, batch=b, token_budget=budget))
    share = 1 - (1 - units.high_share) ** dp
    moe_routed_s = 0.0
    if c.num_moe_layers:  # the routed experts' part of mlp, the same mean of the two kinds of step
        moe_routed_s = c.num_moe_layers * ((1 - share) * routed_experts_s(c, b + units.low_tokens)
                                           + share * routed_experts_s(c, b + units.high_tokens))
    return {"batch": cand.batch, "layout": "DEP" if dp > 1 else "TP", "limits": limits, "measured": measured,
            "predicted": cand.output_tokens_per_s, "predicted_step_s": cand.batch / cand.output_tokens_per_s,
            "implied_step_s": cand.batch / measured, "terms": terms, "moe_routed_s": moe_routed_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="published model name, e.g. 'Llama 3.1 8B'")
    ap.add_argument("--hardware", default="", help="prefix of the published hardware name, e.g. H100")
    ap.add_argument("--tp", type=int, default=0, help="GPUs of the row (0: any)")
    ap.add_argument("--fp4", action="store_true", help="the FP4 rows (default: the 16-bit and FP8 rows)")
    a = ap.parse_args()
    print("hardware release layout precision isl/osl batch measured predicted err% | step implied | "
          + " ".join(t.removesuffix("_s") for t in (*TERMS[:2], "moe_routed_s", *TERMS[2:]))
          + " (ms) | max_batch_size/max_num_tokens")
    for r in csv.DictReader(open(F.DATA / "throughput.csv")):
        if r["engine"] == "vLLM" or r["model"] != a.model or not r["hardware"].startswith(a.hardware) \
                or (a.tp and int(r["tp"] or 1) != a.tp) or (r["precision"] == "FP4") != a.fp4:
            continue
        d = breakdown(r)
        if d is None:
            continue
        terms = " ".join(f"{s_to_ms(d['terms'][t]):.2f}" for t in TERMS[:2]) + f" {s_to_ms(d['moe_routed_s']):.2f} " \
            + " ".join(f"{s_to_ms(d['terms'][t]):.2f}" for t in TERMS[2:])
        print(f"{r['hardware']} {r['engine_version']} {d['layout']}{r['tp'] or 1} {r['precision']} "
              f"{r['isl']}/{r['osl']} {d['batch']} "
              f"{d['measured']:.0f} {d['predicted']:.0f} {100 * (d['predicted'] / d['measured'] - 1):+.1f} | "
              f"{s_to_ms(d['predicted_step_s']):.2f} {s_to_ms(d['implied_step_s']):.2f} | {terms} | "
              f"{d['limits']['max_num_seqs']}/{d['limits']['max_num_batched_tokens']}")


if __name__ == "__main__":
    main()
