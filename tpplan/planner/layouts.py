"""Every layout a plan considers, for `recommend` and `sweep` alike: (tp, pp, dp_attention, ep, replicas).

Plain layouts are TP x PP (x replicas). MoE models add expert parallelism (ep) and attention data parallelism
(dp_attention): dp_attention ranks of tp GPUs each (attention TP inside a rank), the routed experts over all
G = tp x dp_attention GPUs of a pipeline stage, either whole (ep = G) or split G ways (ep = 1). What each engine
accepts, and the flags that ask for it:
- vLLM: `--tensor-parallel-size tp --data-parallel-size dp`; the expert layers form a TP group of size DP x TP, or
  an EP group of that size with `--enable-expert-parallel` (docs.vllm.ai/en/latest/serving/
  data_parallel_deployment/ and expert_parallel_deployment/). EP also works with DP 1 (EP = TP). With
  `--pipeline-parallel-size` the EP group is built per pipeline stage: vllm/distributed/parallel_state.py
  `initialize_model_parallel` lays ranks out as (DP, PP, PCP, TP) and forms each EP group of DP x PCP x TP ranks
  of one PP stage, so PP combines with DP and EP. Across nodes vLLM starts whole DP ranks per node
  (--data-parallel-size-local), stages and all, so each stage's group spans the nodes; that placement is refused
  here rather than modelled as stages across nodes.
- SGLang: `--tp-size G --dp-size dp --enable-dp-attention` (attention TP = tp-size / dp-size), experts EP with
  `--ep-size G` (docs.sglang.io cookbook server_arguments: "enable_dp_attention: DP for attention, TP for FFN";
  advanced_features/dp_dpa_smg_guide). `--pp-size` with DP attention is refused here: sgl-project/sglang
  issue #9805 (open) reports `--tp-size 4 --ep-size 4 --dp-size 4 --pp-size 2 --enable-dp-attention` crashing on
  the warm-up request, and PR #17823 (closed unmerged) that DeepEP with PP corrupts the hidden states handed
  between stages; SGLang's own multi-node DeepSeek commands use TP16 or DP attention over both nodes, not PP
  (benchmark/deepseek_v3/README.md, docs/advanced_features/pipeline_parallelism.md: PP for long-context prefill).
  PP with EP inside one TP group (dp 1) passes server_args' checks and is kept. SGLang splits whole experts evenly:
  FusedMoE asserts `num_experts % self.moe_ep_size == 0` and gives each rank num_experts // ep_size
  (python/sglang/srt/layers/moe/fused_moe_triton/layer.py), so an EP size that does not divide the routed experts is
  refused (num_experts there also counts --ep-num-redundant-experts, default 0, which tpplan does not plan). vLLM
  places a remainder on the first ranks (determine_expert_map) and has no such rule.
- TensorRT-LLM: `tp_size G`, `moe_expert_parallel_size` (`--ep_size`) = G, and `enable_attention_dp: true` in
  the LLM API options, which makes every one of the tp_size ranks an attention DP rank (attention TP 1)
  (nvidia.github.io/TensorRT-LLM/features/parallel-strategy.html). tensorrt_llm/mapping.py: world = tp x pp x cp
  and moe_tp x moe_ep = tp inside each PP stage; attention DP runs with pp > 1 (NVIDIA/TensorRT-LLM PR #3244
  removed the assertion against attention DP + PP; PR #3370 review: "You can have pp > 1 with attn_dp").
"""

from __future__ import annotations

from tpplan.models.engines import valid_tp_degrees
from tpplan.models.spec import ModelSpec
from tpplan.planner.workload import Workload
from tpplan.records import record

MOE_LAYOUT_ENGINES = ("vllm", "sglang", "trtllm")
"""Engines with expert parallelism and attention data parallelism (Megatron training is not planned with EP)."""


@record
class Layout:
    """One way to place a replica on GPUs: tp x dp_attention GPUs per pipeline stage, pp stages, `replicas` copies."""

    tp: int
    """Attention (and dense-layer) TP degree; with DP attention, inside each DP rank."""
    pp: int
    replicas: int
    dp_attention: int = 1
    """Attention data-parallel ranks per pipeline stage (1: none)."""
    ep: int = 1
    """Expert-parallel degree of the routed experts: 1 (experts split) or tp x dp_attention (whole experts)."""

    @property
    def gpus_per_replica(self) -> int:
        return self.tp * self.dp_attention * self.pp

    @property
    def gpus_used(self) -> int:
        """Every GPU of every replica."""
        return self.gpus_per_replica * self.replicas

    @property
    def key(self) -> tuple[int, int, int, int]:
        """(tp, pp, dp_attention, ep): what tells two layouts of one plan apart."""
        return (self.tp, self.pp, self.dp_attention, self.ep)


def powers_of_two(limit: int) -> list[int]:
    """1, 2, 4, ... up to `limit`."""
    out, x = [], 1
    while x <= limit:
        out.append(x)
        x *= 2
    return out


def pp_sizes(limit: int, layers: int) -> list[int]:
    """Pipeline sizes for `limit` GPUs per stage group: every divisor of `limit` (so 6 GPUs get PP3 and PP6) and every
    power of two; vLLM, SGLang and TensorRT-LLM accept any PP size up to the layer count (uneven splits)."""
    sizes = {p for p in range(1, limit + 1) if limit % p == 0} | set(powers_of_two(limit))
    return sorted(p for p in sizes if p <= layers)


def candidate_shapes(spec: ModelSpec, w: Workload) -> list[tuple[int, int]]:
    """(tp, pp) pairs to consider: TP powers of two and every engine-valid degree, tp x pp <= GPUs."""
    tps = sorted(set(powers_of_two(w.gpus)) | {t for t in valid_tp_degrees(spec, engine=w.engine) if t <= w.gpus})
    return [(tp, pp) for tp in tps for pp in pp_sizes(w.gpus // tp, spec.num_hidden_layers)]


def moe_layouts(spec: ModelSpec, w: Workload) -> list[tuple[int, int, int, int]]:
    """(tp, pp, dp_attention, ep) layouts beyond plain TP x PP: DP attention with TP or EP experts (dp >= 2), and
    EP inside one TP group (dp 1, ep = tp >= 2; on SGLang and TensorRT-LLM also every power-of-two EP from 2 to
    tp / 2, `hybrid_ep`), each with every pipeline size the remaining GPUs allow. Empty for dense models, training
    and engines without them. Layouts an engine refuses are listed with the reason (`moe_layout_reasons`)."""
    if not spec.is_moe or w.mode != "serve" or w.engine not in MOE_LAYOUT_ENGINES:
        return []
    stages = []
    for tp in powers_of_two(w.gpus):
        stages += [(tp, 1, tp)] if tp > 1 else []
        if w.engine in HYBRID_EP_ENGINES:
            stages += [(tp, 1, ep) for ep in powers_of_two(tp // 2)[1:] if ep <= spec.num_experts]
        for dp in powers_of_two(w.gpus // tp)[1:]:  # TensorRT-LLM rejects tp > 1 here: listed with the reason
            stages += [(tp, dp, 1), (tp, dp, tp * dp)]
    return [(tp, pp, dp, ep) for tp, dp, ep in stages
            for pp in pp_sizes(w.gpus // (tp * dp), spec.num_hidden_layers)]


def tp_group_slots(*, gpus: int, tp: int, nvlink_domain_size: int, gpus_per_node: int,
                   pool_gpus: int = 0) -> tuple[int, int]:
    """(TP groups of `tp` GPUs that `gpus` GPUs hold with none split between NVLink domains, the domain size used):
    floor(domain / tp) per whole domain plus what the GPUs left over hold. The domain is the NVLink domain, or the
    node where GPUs share only PCIe (domain 1) or where `tp` exceeds the NVLink domain (a group allowed across it
    still stays in one node); a `tp` above the node is not placed here (structural_reasons refuses it unless allowed),
    and takes gpus // tp. Engines start TP groups on consecutive local ranks of one node, so TP5 on a node of 8
    leaves 3 GPUs that no second group of 5 can use. `pool_gpus`: every GPU of the profile (its nodes), of which the
    `gpus` asked for may be any: 10 of two 8-GPU nodes hold two TP5 groups, one per node."""
    domain = next((d for d in (nvlink_domain_size, gpus_per_node) if d > 1 and tp <= d), 0)
    if not domain:
        return gpus // tp, tp
    whole, rest = divmod(max(gpus, pool_gpus), domain)  # the `gpus` used may sit on any of the pool's domains
    return min(gpus // tp, whole * (domain // tp) + rest // tp), domain


def fitting_replicas(*, gpus: int, tp: int, groups_per_replica: int, nvlink_domain_size: int = 0,
                     gpus_per_node: int = 0, pool_gpus: int = 0) -> int:
    """Replicas of `groups_per_replica` TP groups (pp x dp_attention) that `gpus` GPUs hold: as many as the GPUs
    allow, and no more than whole TP groups fit in the NVLink domains (`tp_group_slots`; 0 sizes: no placement
    rule); at least 1 (a layout that fits none is then refused with the count, candidates.placement_reasons)."""
    slots, _ = tp_group_slots(gpus=gpus, tp=tp, nvlink_domain_size=nvlink_domain_size, gpus_per_node=gpus_per_node,
                              pool_gpus=pool_gpus)
    return max(1, min(gpus // (tp * groups_per_replica), slots // groups_per_replica))


def serving_layouts(spec: ModelSpec, w: Workload, *, nvlink_domain_size: int = 0, gpus_per_node: int = 0,
                    pool_gpus: int = 0) -> list[Layout]:
    """Every layout `recommend` and `sweep` evaluate: TP x PP, then the MoE layouts; replicas as `fitting_replicas`."""
    def replicas(tp: int, groups: int) -> int:
        return fitting_replicas(gpus=w.gpus, tp=tp, groups_per_replica=groups, nvlink_domain_size=nvlink_domain_size,
                                gpus_per_node=gpus_per_node, pool_gpus=pool_gpus)

    plain = [Layout(tp=tp, pp=pp, replicas=replicas(tp, pp)) for tp, pp in candidate_shapes(spec, w)]
    return plain + [Layout(tp=tp, pp=pp, dp_attention=dp, ep=ep, replicas=replicas(tp, dp * pp))
                    for tp, pp, dp, ep in moe_layouts(spec, w)]


HYBRID_EP_ENGINES = ("sglang", "trtllm")
"""Engines that run EP smaller than TP inside one TP group (no DP attention), each expert split TP / EP ways:
SGLang ("For hybrid EP and TP (i.e., ep_size < tp_size), only the none backend ... is supported",
docs/advanced_features/expert_parallelism.md) and TensorRT-LLM (moe_tensor_parallel_size x
moe_expert_parallel_size = tp_size, docs/source/advanced/expert-parallelism.md). vLLM's EP is always TP x DP."""


def hybrid_ep(engine: str, *, tp: int, ep: int, dp_attention: int) -> bool:
    """A layout of EP < TP inside one TP group that the engine runs (`HYBRID_EP_ENGINES`)."""
    return engine in HYBRID_EP_ENGINES and dp_attention == 1 and 1 < ep < tp and tp % ep == 0


def unpriced_a2a_backend(w: Workload, *, ep: int, dp_attention: int) -> bool:
    """SGLang with a forced all-to-all backend on EP without DP attention: SGLang runs it (tokens reduce-scattered
    over the TP group, moved by the backend, gathered back), but tpplan prices an all-to-all only under DP
    attention, so such a layout is refused rather than priced as an all-reduce."""
    return w.engine == "sglang" and w.moe_dispatch == "all2all" and ep > 1 and dp_attention == 1


def moe_layout_reasons(spec: ModelSpec, *, tp: int, ep: int, dp_attention: int, engine: str, pp: int = 1,
                       gpus_per_node: int = 0) -> list[str]:
    """Which EP / DP-attention layouts the engine accepts (the module docstring cites each rule)."""
    group, out = tp * dp_attention, []
    if ep == 1 and dp_attention == 1:
        return out
    if ep > spec.num_experts:
        out.append(f"EP {ep} exceeds the {spec.num_experts} routed experts: some GPUs would hold none")
    if ep == 1 and dp_attention > 1 and spec.moe_intermediate_size % group:
        out.append(f"moe_intermediate_size ({spec.moe_intermediate_size}) is not divisible by the expert tensor "
                   f"parallel size tp x dp ({group})")
    if 1 < ep < group and spec.moe_intermediate_size % (group // ep):
        out.append(f"moe_intermediate_size ({spec.moe_intermediate_size}) is not divisible by the expert tensor "
                   f"parallel size TP / EP ({group // ep})")
    if engine == "trtllm" and dp_attention > 1 and tp > 1:
        # TensorRT-LLM enable_attention_dp: every rank of tp_size is its own attention DP rank (attention TP 1)
        out.append(f"trtllm: enable_attention_dp runs attention with TP 1 on each of the tp_size ranks; attention "
                   f"TP {tp} inside a DP rank is not supported")
    if engine == "sglang" and 1 < ep <= spec.num_experts and spec.num_experts % ep:
        out.append(_sglang_uneven_experts(spec.num_experts, ep=ep, group=group, width=spec.moe_intermediate_size))
    if engine == "sglang" and dp_attention > 1 and pp > 1:
        out.append(f"sglang: --pp-size {pp} with --enable-dp-attention is not a working combination (sgl-project/"
                   f"sglang issue #9805: PP2 x DP-attention crashes on the first request); use DP attention over all "
                   f"{group * pp} GPUs (--tp-size {group * pp} --dp-size {dp_attention * pp}) instead")
    if engine == "vllm" and dp_attention > 1 and pp > 1 and 0 < gpus_per_node < group * pp:
        # vLLM lays ranks out as (DP, PP, TP) and starts --data-parallel-size-local whole DP ranks per node, so a
        # DP rank's stages share a node and each stage's DP x TP group spans the nodes: the reverse of what is
        # modelled here (stages across nodes, each stage's EP / DP group inside one)
        out.append(f"vllm: each DP rank keeps its {pp} pipeline stages on one node, so with {group * pp} GPUs over "
                   f"nodes of {gpus_per_node} every stage's DP x TP group of {group} would span nodes (not modelled); "
                   f"use PP without DP attention across nodes, or DP attention over all GPUs")
    return out


def _sglang_uneven_experts(experts: int, *, ep: int, group: int, width: int) -> str:
    """SGLang's refusal of an EP size that does not divide the routed experts (module docstring), with the fixes in
    tpplan's flags that the other rules accept: experts split (--ep 1) where the expert width divides over the
    group's GPUs, and the largest EP group up to this stage's GPUs that divides the experts."""
    fits = max(d for d in range(1, group + 1) if experts % d == 0)
    fixes = [f"--ep 1 (experts split over the {group} GPUs)"] if width % group == 0 else []
    fixes += [f"an EP group of {fits} GPUs (--tp x --dp-attention = {fits}, --ep {fits})"] if fits > 1 else []
    fix = f"; use {' or '.join(fixes)}" if fixes else ""
    return (f"sglang: --ep-size {ep} does not divide the {experts} routed experts (SGLang's FusedMoE asserts "
            f"num_experts % ep_size == 0){fix}")


TRTLLM_OPTIONS_FILE = "extra_llm_api_options.yaml"
"""The TensorRT-LLM LLM-API options file `--emit trtllm` writes and passes to trtllm-serve --extra_llm_api_options
(tensorrt_llm/commands/serve.py: "Path to a YAML file that overwrites the parameters specified by trtllm-serve",
also spelled --config in later releases): `enable_attention_dp: true` for attention DP, and the KV-cache dtype,
which trtllm-serve has no flag for (tpplan.planner.emit.trtllm_options)."""


def moe_layout_flags(engine: str, *, tp: int, pp: int, ep: int, dp_attention: int) -> list[str]:
    """Flags of an EP / DP-attention layout (one replica; the EP group is one pipeline stage's tp x dp GPUs)."""
    dp, group = dp_attention, tp * dp_attention
    if engine == "sglang":
        out = [f"--tp-size {group}"] + ([f"--pp-size {pp}"] if pp > 1 else [])
        out += [f"--dp-size {dp}", "--enable-dp-attention"] if dp > 1 else []
        return out + ([f"--ep-size {ep}"] if ep > 1 else [])
    if engine == "trtllm":
        out = [f"--tp_size {group}"] + ([f"--pp_size {pp}"] if pp > 1 else []) + ([f"--ep_size {ep}"] if ep > 1 else [])
        return out + ([f"--extra_llm_api_options {TRTLLM_OPTIONS_FILE}"] if dp > 1 else [])
    out = [f"--tensor-parallel-size {tp}"] + ([f"--pipeline-parallel-size {pp}"] if pp > 1 else [])
    return out + ([f"--data-parallel-size {dp}"] if dp > 1 else []) + (["--enable-expert-parallel"] if ep > 1 else [])


def layout_flags(engine: str, *, tp: int, pp: int, replicas: int, ep: int = 1, dp_attention: int = 1,
                 moe_model: bool = False) -> list[str]:
    """The engine's own flags for a layout (the words in the answer line). vLLM replicas of an MoE model are
    separate servers, so no --data-parallel-size (on an MoE model it means attention DP: tpplan.planner.emit)."""
    if ep > 1 or dp_attention > 1:
        return moe_layout_flags(engine, tp=tp, pp=pp, ep=ep, dp_attention=dp_attention)
    if engine == "sglang":
        names = ("--tp-size", "--pp-size", "--dp-size")
    elif engine == "trtllm":
        names = ("--tp_size", "--pp_size", None)
    elif engine == "megatron":
        names = ("--tensor-model-parallel-size", "--pipeline-model-parallel-size", None)
    else:
        names = ("--tensor-parallel-size", "--pipeline-parallel-size", "--data-parallel-size")
    out = [f"{names[0]} {tp}"]
    if pp > 1:
        out.append(f"{names[1]} {pp}")
    if replicas > 1 and names[2] and not (engine == "vllm" and moe_model):
        out.append(f"{names[2]} {replicas}")
    return out
