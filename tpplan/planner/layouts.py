"""Expert-parallel and attention-data-parallel layouts of MoE models, per engine (tpplan.cost.moe models them).

A layout is (tp, pp, dp_attention, ep): dp_attention ranks of tp GPUs each (attention TP inside a rank), the
routed experts over all G = tp x dp_attention GPUs, either whole (ep = G) or split G ways (ep = 1). What each
engine accepts, and the flags that ask for it:
- vLLM: `--tensor-parallel-size tp --data-parallel-size dp`; the expert layers form a TP group of size DP x TP, or
  an EP group of that size with `--enable-expert-parallel` (docs.vllm.ai/en/latest/serving/
  data_parallel_deployment/ and expert_parallel_deployment/). EP also works with DP 1 (EP = TP).
- SGLang: `--tp-size G --dp-size dp --enable-dp-attention` (attention TP = tp-size / dp-size), experts EP with
  `--ep-size G` (docs.sglang.io cookbook server_arguments: "enable_dp_attention: DP for attention, TP for FFN";
  advanced_features/dp_dpa_smg_guide).
- TensorRT-LLM: `tp_size G`, `moe_expert_parallel_size` (`--ep_size`) = G, and `enable_attention_dp: true` in
  the LLM API options, which makes every one of the tp_size ranks an attention DP rank (attention TP 1)
  (nvidia.github.io/TensorRT-LLM/features/parallel-strategy.html).
Pipeline parallelism is not combined with EP / DP attention here (pp = 1 for these layouts).
"""

from __future__ import annotations

from tpplan.models.spec import ModelSpec
from tpplan.planner.workload import Workload

MOE_LAYOUT_ENGINES = ("vllm", "sglang", "trtllm")
"""Engines with expert parallelism and attention data parallelism (Megatron training is not planned with EP)."""


def powers_of_two(limit: int) -> list[int]:
    """1, 2, 4, ... up to `limit`."""
    out, x = [], 1
    while x <= limit:
        out.append(x)
        x *= 2
    return out


def moe_layouts(spec: ModelSpec, w: Workload) -> list[tuple[int, int, int, int]]:
    """(tp, pp, dp_attention, ep) layouts beyond plain TP x PP: DP attention with TP or EP experts (dp >= 2), and
    EP inside one TP group (dp 1, ep = tp >= 2). Empty for dense models, training and engines without them."""
    if not spec.is_moe or w.mode != "serve" or w.engine not in MOE_LAYOUT_ENGINES:
        return []
    out = []
    for tp in powers_of_two(w.gpus):
        out += [(tp, 1, 1, tp)] if tp > 1 else []
        for dp in powers_of_two(w.gpus // tp)[1:]:  # TensorRT-LLM rejects tp > 1 here: listed with the reason
            out += [(tp, 1, dp, 1), (tp, 1, dp, tp * dp)]
    return out


def moe_layout_reasons(spec: ModelSpec, *, tp: int, ep: int, dp_attention: int, engine: str) -> list[str]:
    """Which EP / DP-attention layouts the engine accepts (tpplan.planner.layouts enumerates them)."""
    group, out = tp * dp_attention, []
    if ep == 1 and dp_attention == 1:
        return out
    if ep > spec.num_experts:
        out.append(f"EP {ep} exceeds the {spec.num_experts} routed experts: some GPUs would hold none")
    if ep == 1 and dp_attention > 1 and spec.moe_intermediate_size % group:
        out.append(f"moe_intermediate_size ({spec.moe_intermediate_size}) is not divisible by the expert tensor "
                   f"parallel size tp x dp ({group})")
    if engine == "trtllm" and dp_attention > 1 and tp > 1:
        # TensorRT-LLM enable_attention_dp: every rank of tp_size is its own attention DP rank (attention TP 1)
        out.append(f"trtllm: enable_attention_dp runs attention with TP 1 on each of the tp_size ranks; attention "
                   f"TP {tp} inside a DP rank is not supported")
    return out
