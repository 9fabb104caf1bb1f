"""Training layouts (`--workload train`) as Megatron-Core accepts them: TP x PP x DP, and for MoE models expert
parallelism with "MoE parallel folding" (the routed experts laid out apart from attention).

A layout is (tp, pp, replicas = DP, ep, etp) on world = tp x pp x replicas GPUs. Megatron's rules, each in its own
words where it has them:
- world % (TP x CP x PP) == 0 (megatron/training/arguments.py `validate_args`: "world size ... is not divisible by
  total_model_size"); DP = world / (TP x CP x PP). CP is 1 here.
- `--expert-model-parallel-size` EP (default 1) must divide `--num-experts` (validate_args: "Number of experts
  should be a multiple of expert model parallel_size.") and is refused with fp16 ("Expert parallelism is not
  supported with fp16 training.").
- `--expert-tensor-parallel-size` ETP defaults to `--tensor-model-parallel-size` (validate_args and
  ModelParallelConfig.__post_init__: "if args.expert_tensor_parallel_size is None:
  args.expert_tensor_parallel_size = args.tensor_model_parallel_size").
- Folding: world % (ETP x EP x PP) == 0, EDP = world / (ETP x EP x PP) (megatron/core/parallel_state.py
  `initialize_model_parallel`: "world_size (W) is not divisible by expert_tensor_model_pipeline_parallel size
  (N)"). So ETP x EP x EDP = TP x CP x DP on each pipeline stage: the expert group ETP x EP divides the stage's
  TP x DP GPUs, and may be larger than TP (EP over the data-parallel ranks, the usual EP8 TP1 of Mixtral).
- Each expert's matrices split ETP ways: moe_ffn_hidden_size % ETP == 0 (megatron.core.utils.divide in the expert
  linear layers), and linear biases in MoE only with ETP 1 (transformer_config.py: "Bias in Moe is only supported
  when ETP==1"; gpt-oss has expert biases).
- The layers split evenly over the pipeline: num_layers % PP == 0 (validate_args: "Number of layers should be
  divisible by the pipeline-model-parallel size", unless an uneven split is given with
  --decoder-first/last-pipeline-num-layers, which tpplan does not plan).
- Sequence parallelism splits each micro-batch's [s, b, h] activations along the sequence over TP:
  s % TP == 0 (megatron/core/tensor_parallel/mappings.py `_split_along_first_dim`: "First dimension of the tensor
  should be divisible by tensor parallel size").
- MoE training with TP > 1 needs `--sequence-parallel`: megatron/core/transformer/moe/moe_layer.py
  `MoELayer.forward` raises "During training, performance may degrade if MoE and tensor parallelism are enabled
  without also enabling sequence parallelism." (and model_parallel_config.py warns "When using expert parallelism
  and tensor parallelism for training, sequence parallelism must be used"), so every MoE layout with TP > 1 is
  planned, and printed, with sequence parallelism on.
- `--moe-token-dispatcher-type` defaults to allgather (transformer_config.py `moe_token_dispatcher_type`
  "The default is 'allgather'"); the MoE guide recommends alltoall when EP is applied ("Dispatcher `alltoall` is
  recommended if expert parallelism is applied"), and its recipes set it. Layouts with EP or ETP != TP are planned
  (tpplan.cost.train_experts) and printed with alltoall; TP-only layouts keep the experts split over TP, the
  allgather dispatcher's layout, priced as a TP-sharded MLP.
Candidates: every (tp, pp) of `candidate_shapes` with ep = 1, etp = tp; for MoE models also every EP > 1 that
divides num_experts with ETP in {TP, 1} (the default, and the folding the MoE guide recommends: "setting TP=1 for
MoE models, which often gets better MFU") that fits the stage's TP x DP GPUs.
"""

from __future__ import annotations

from tpplan.models.engines import tp_violation
from tpplan.models.spec import ModelSpec
from tpplan.planner.layouts import candidate_shapes
from tpplan.planner.workload import TRAIN_MICROBATCHES_PER_STAGE, Workload
from tpplan.records import record

MEGATRON = "megatron"
"""Training is planned as Megatron-Core runs it, whatever --engine says."""


@record
class TrainLayout:
    """One Megatron-Core layout: tp x pp GPUs per data-parallel replica, the routed experts over ep x etp."""

    tp: int
    pp: int
    replicas: int
    """Data-parallel size of the attention and dense layers (DP = world / (tp x pp))."""
    ep: int = 1
    etp: int = 0
    """--expert-tensor-parallel-size; 0: Megatron's default, tp."""
    moe: bool = False
    """The model has routed experts (Megatron's MoE rules apply)."""

    @property
    def expert_tp(self) -> int:
        return self.etp or self.tp

    @property
    def world(self) -> int:
        return self.tp * self.pp * self.replicas

    @property
    def stage_gpus(self) -> int:
        """GPUs of one pipeline stage, TP x DP = ETP x EP x EDP."""
        return self.tp * self.replicas

    @property
    def expert_dp(self) -> int:
        """EDP = world / (ETP x EP x PP): the group over which the routed experts' gradients are all-reduced."""
        return self.stage_gpus // (self.expert_tp * self.ep)

    @property
    def folded(self) -> bool:
        """The routed experts are laid out apart from attention (EP, or ETP != TP): the alltoall dispatcher."""
        return self.ep > 1 or self.expert_tp != self.tp

    @property
    def sequence_parallel_required(self) -> bool:
        """Megatron's MoE layer refuses to train with TP > 1 without --sequence-parallel."""
        return self.moe and self.tp > 1


def expert_layout_problem(spec: ModelSpec, lay: TrainLayout, *, dtype: str = "bf16") -> str | None:
    """The first Megatron rule an MoE layout breaks (see the module docstring), with the values and a fix; None when
    Megatron accepts it. `lay` must have tp x pp x replicas GPUs."""
    ep, etp, e = lay.ep, lay.expert_tp, spec.num_experts
    if ep > 1 and e % ep:
        def fits(t: int) -> str:
            return ", ".join(str(d) for d in range(1, e + 1) if e % d == 0 and lay.stage_gpus % (d * t) == 0)
        whole = f"; with --etp 1: {fits(1)}" if etp > 1 else ""
        return (f"--ep {ep}: num_experts ({e}) of {spec.name} is not a multiple of Megatron's "
                f"--expert-model-parallel-size ('Number of experts should be a multiple of expert model "
                f"parallel_size.'); EP sizes that divide it and fit this layout: {fits(etp)} with --etp {etp}{whole}")
    if lay.stage_gpus % (ep * etp):
        hint = ("; e.g. add --etp 1 (experts whole on each GPU)" if etp > 1 and lay.stage_gpus % ep == 0 else "")
        return (f"--ep {ep} x --etp {etp} x --pp {lay.pp} = {ep * etp * lay.pp} GPUs does not divide the "
                f"{lay.world} GPUs of --tp {lay.tp} x --pp {lay.pp} x --replicas {lay.replicas} (Megatron: 'world_size "
                f"({lay.world}) is not divisible by expert_tensor_model_pipeline_parallel size "
                f"({ep * etp * lay.pp})'); make --ep x --etp divide --tp x --replicas = {lay.stage_gpus}{hint}")
    etp_words = f"expert tensor-parallel size {etp} (--etp, default --tp)"
    if lay.folded and spec.moe_intermediate_size % etp:  # TP-only layouts: the engine's TP rules say so
        return (f"{etp_words}: moe_intermediate_size ({spec.moe_intermediate_size}) of {spec.name} is not divisible "
                f"by it; use an --etp that divides it")
    if spec.expert_bias and etp > 1:
        return (f"{etp_words}: {spec.name}'s experts have biases, and Megatron-Core supports bias in MoE only with "
                f"--expert-tensor-parallel-size 1 ('Bias in Moe is only supported when ETP==1'); add --etp 1")
    if ep > 1 and dtype == "fp16":
        return "--ep with --dtype fp16: Megatron refuses it ('Expert parallelism is not supported with fp16 " \
               "training.'); train in bf16"
    return None


def pipeline_problem(spec: ModelSpec, pp: int) -> str | None:
    """Megatron's even layer split (module docstring): a reason, or None."""
    layers = spec.num_hidden_layers
    if pp <= 1 or layers % pp == 0:
        return None
    fits = [d for d in range(1, layers + 1) if layers % d == 0]
    return (f"Megatron splits the {layers} layers evenly over the pipeline and PP{pp} does not divide them "
            f"(\"Number of layers should be divisible by the pipeline-model-parallel size\"); PP degrees that do: "
            f"{', '.join(map(str, fits))}")


def sequence_split_problem(seq_len: int, tp: int, sequence_parallel: bool) -> str | None:
    """Sequence parallelism's split of each sequence over TP (module docstring): a reason, or None."""
    if not sequence_parallel or tp <= 1 or seq_len % tp == 0:
        return None
    lower, upper = seq_len // tp * tp, -(-seq_len // tp) * tp
    lengths = f"{lower} or {upper}" if lower else f"{upper}"
    return (f"sequence parallelism splits each sequence's {seq_len} tokens over TP{tp}, and Megatron needs the "
            f"sequence length divisible by TP (\"First dimension of the tensor should be divisible by tensor "
            f"parallel size\"): use --input-len {lengths}")


def expert_sizes(spec: ModelSpec, stage_gpus: int) -> list[int]:
    """EP > 1 sizes Megatron accepts for `spec` on a stage of `stage_gpus` GPUs: divisors of num_experts."""
    return [d for d in range(2, min(spec.num_experts, stage_gpus) + 1) if spec.num_experts % d == 0 and
            stage_gpus % d == 0]


def megatron_placement_reasons(*, tp: int, groups: int, nvlink_domain_size: int, gpus_per_node: int) -> list[str]:
    """Megatron-Core numbers TP groups on consecutive ranks (initialize_model_parallel's order tp-cp-ep-dp-pp), and a
    launcher fills each node with consecutive ranks, so TP group k holds ranks k x tp .. (k + 1) x tp - 1: with a TP
    degree that does not divide the node's NVLink domain some group spans two domains (TP5 on 8-GPU nodes: ranks
    5-9). A TP degree larger than the domain is structural_reasons' case."""
    domain = next((d for d in (nvlink_domain_size, gpus_per_node) if d > 1 and tp <= d), 0)
    if not domain or domain % tp == 0:
        return []
    split = next((k for k in range(groups) if (k * tp) // domain != ((k + 1) * tp - 1) // domain), None)
    if split is None:
        return []
    return [f"Megatron places TP group {split} on ranks {split * tp}-{(split + 1) * tp - 1}, across two {domain}-GPU "
            f"domains (TP groups take consecutive ranks); use a TP degree that divides {domain}"]


def training_layouts(spec: ModelSpec, w: Workload) -> list[TrainLayout]:
    """Every layout a training plan evaluates (module docstring): TP x PP x DP, then the EP layouts of MoE models
    whose (tp, pp) Megatron accepts."""
    plain = [TrainLayout(tp=tp, pp=pp, replicas=w.gpus // (tp * pp), moe=spec.is_moe)
             for tp, pp in candidate_shapes(spec, w)]
    if not spec.is_moe:
        return plain
    out = list(plain)
    for lay in plain:
        if tp_violation(spec, lay.tp, engine=MEGATRON) or pipeline_problem(spec, lay.pp):
            continue
        for etp in sorted({lay.tp, 1}, reverse=True):
            for ep in expert_sizes(spec, lay.stage_gpus // etp):
                moe = TrainLayout(tp=lay.tp, pp=lay.pp, replicas=lay.replicas, ep=ep, etp=etp, moe=True)
                if expert_layout_problem(spec, moe, dtype=w.dtype) is None:
                    out.append(moe)
    return out


MEGATRON_DTYPE_FLAGS = {"bf16": ["--bf16"], "fp16": ["--fp16"], "fp8": ["--bf16", "--fp8-format hybrid"]}
"""Megatron-LM's precision flags per training dtype (megatron/training/arguments.py: --bf16, --fp16; --fp8-format
e4m3 | hybrid runs Transformer Engine's FP8 GEMMs, hybrid = E4M3 forward, E5M2 gradients)."""


def micro_batches_per_replica(lay: TrainLayout, micro_batch: int, global_batch_size: int | None = None) -> int | None:
    """Micro-batches each data-parallel replica runs per optimizer step: global / (micro-batch x DP) when the user
    fixed the global batch (None when that is not a whole number: Megatron refuses it, `global_batch_problem`),
    else 4 x PP (enough to keep the 1F1B bubble at (PP - 1) / (5 PP - 1) of the step)."""
    if global_batch_size is None:
        return TRAIN_MICROBATCHES_PER_STAGE * lay.pp
    per = micro_batch * lay.replicas
    return global_batch_size // per if global_batch_size % per == 0 else None


def global_batch_problem(lay: TrainLayout, micro_batch: int, global_batch_size: int | None) -> str | None:
    """Megatron's rule that the global batch is a whole number of micro-batches on every data-parallel replica
    (megatron/core/num_microbatches_calculator.py: "global batch size ({}) is not divisible by micro batch size ({})
    times data parallel size ({})"), with the nearest global batches that are; None when it holds or is not fixed."""
    if global_batch_size is None or micro_batches_per_replica(lay, micro_batch, global_batch_size) is not None:
        return None
    per = micro_batch * lay.replicas
    lower, upper = global_batch_size // per * per, (global_batch_size // per + 1) * per
    near = " or ".join(str(x) for x in (lower, upper) if x > 0)
    return (f"global batch size ({global_batch_size}) is not divisible by micro batch size ({micro_batch}) times data "
            f"parallel size ({lay.replicas}) (Megatron refuses it); use --global-batch-size {near}")


def global_batch(lay: TrainLayout, micro_batch: int, global_batch_size: int | None = None) -> int:
    """Sequences per optimizer step as planned: the user's --global-batch-size, else micro-batch x 4 PP
    micro-batches per replica x DP replicas."""
    if global_batch_size is not None:
        return global_batch_size
    return micro_batch * TRAIN_MICROBATCHES_PER_STAGE * lay.pp * lay.replicas


def megatron_flags(lay: TrainLayout, dtype: str = "bf16", *, sequence_parallel: bool = False,
                   micro_batch: int | None = None, distributed_optimizer: bool = False,
                   global_batch_size: int | None = None) -> list[str]:
    """Megatron-LM's flags for a layout (DP follows from the world size): precision, TP, PP, --sequence-parallel
    when asked for or MoE needs it, for folded MoE layouts EP, ETP when it is not the default and the alltoall
    dispatcher, and with `micro_batch` the batch the plan assumed: --micro-batch-size and --global-batch-size
    (Megatron's default global batch is micro-batch x DP, one micro-batch per step, which would leave PP - 1 of
    every PP stages idle through most of the step)."""
    out = MEGATRON_DTYPE_FLAGS.get(dtype, []) + [f"--tensor-model-parallel-size {lay.tp}"] + (
        [f"--pipeline-model-parallel-size {lay.pp}"] if lay.pp > 1 else [])
    out += [f"--expert-model-parallel-size {lay.ep}"] if lay.ep > 1 else []
    out += [f"--expert-tensor-parallel-size {lay.expert_tp}"] if lay.expert_tp != lay.tp else []
    out += ["--sequence-parallel"] if lay.tp > 1 and (sequence_parallel or lay.sequence_parallel_required) else []
    out += ["--moe-token-dispatcher-type alltoall"] if lay.folded else []
    # the routed experts are priced as grouped GEMMs (tpplan.cost.train_experts); Megatron runs them one GEMM per
    # local expert unless --moe-grouped-gemm (arguments.py, off by default; every MoE recipe sets it)
    out += ["--moe-grouped-gemm"] if lay.moe else []
    out += ["--use-distributed-optimizer"] if distributed_optimizer else []
    if micro_batch is not None:
        out += [f"--micro-batch-size {micro_batch}",
                f"--global-batch-size {global_batch(lay, micro_batch, global_batch_size)}"]
    return out


def batch_assumptions(w: Workload) -> dict[str, str]:
    """Sequence length, micro-batch and global batch under Megatron's names. The global batch is micro-batch x
    micro-batches per step x DP = micro-batch x 4 x PP x DP sequences: it follows the layout, not a fixed target."""
    mb, m = w.batch or 1, TRAIN_MICROBATCHES_PER_STAGE
    fixed = (f"{w.global_batch} sequences per step (--global-batch-size): each layout runs {w.global_batch} / "
             f"(micro-batch {mb} x DP) micro-batches per replica; a DP that does not divide it is refused, as "
             f"Megatron refuses it")
    follows = (f"{mb * m} x PP x DP sequences per step: micro-batch {mb} x {m} x PP micro-batches per replica x DP "
               f"replicas (Megatron --global-batch-size); it follows the layout, so layouts are compared at their own "
               f"global batch; --global-batch-size fixes it")
    return {"seq_length": f"{w.input_len} tokens per sequence (--input-len; Megatron --seq-length)",
            "micro_batch_size": f"{mb} sequence{'s' if mb != 1 else ''} (--micro-batch-size / --batch)",
            "global_batch_size": fixed if w.global_batch else follows}


def training_assumptions(spec: ModelSpec, w: Workload) -> dict[str, str]:
    """The assumptions a training plan states (tpplan.planner.train's model), for the Plan's `assumptions`."""
    out = {**batch_assumptions(w),
           "workload": ("train: " + ("--global-batch-size / (micro-batch x DP)" if w.global_batch else
                                     f"{TRAIN_MICROBATCHES_PER_STAGE} x PP") +
                        " micro-batches per data-parallel replica per step through the 1F1B bubble; throughput = "
                        "every replica's tokens / step"),
           "memory": ("6 + 12 / DP B per parameter held (bf16 weight, fp32 gradient; fp32 master weight and Adam "
                      "moments sharded over the data-parallel ranks: --use-distributed-optimizer)"
                      if w.distributed_optimizer else
                      "18 B per parameter held (bf16 weight, fp32 gradient, fp32 master weight, Adam moments; no "
                      "distributed optimizer, Megatron's default; --use-distributed-optimizer shards the last two)")
                     + "; activations without attention scores (Megatron's fused attention keeps none), sequence "
                       "parallelism when --sequence-parallel is given" +
                     (" and in every MoE layout with TP > 1, which Megatron trains only with it" if spec.is_moe else
                      "")}
    if spec.is_moe:
        out["moe"] = (f"Megatron-Core expert parallelism with MoE parallel folding: the routed experts over EP x ETP "
                      f"GPUs of a pipeline stage (ETP = --tp or 1), their gradients all-reduced over EDP = GPUs / "
                      f"(EP x ETP x PP); --moe-token-dispatcher-type alltoall for EP layouts (Megatron's default is "
                      f"allgather, its MoE guide recommends alltoall with EP); sequence parallelism whenever TP > 1 "
                      f"(Megatron's MoE layer requires it); EP load imbalance {w.moe_imbalance:.2f} (busiest rank's "
                      f"routed tokens / mean; --moe-imbalance)")
    return out
