"""`tpplan measure`: detect the node, plan the workloads (real TP groups, emulated shards, the kernel table), launch."""

from __future__ import annotations

import os
from collections.abc import Callable

from tpplan.errors import MeasurementError
from tpplan.measure.launch import launch
from tpplan.measure.shapes import CPU_MAX_HIDDEN, LayerShape, layer_shape
from tpplan.measure.table import table_args
from tpplan.models.dtypes import MEASURE_DTYPE_BYTES
from tpplan.models.spec import ModelSpec
from tpplan.records import record
from tpplan.units import MiB, bytes_to_gib

NCCL_MULTI_RANK = (2, 30)
"""NCCL 2.30+ runs two ranks on one GPU with NCCL_MULTI_RANK_GPU_ENABLE=1 (FACTS.md §6)."""
EMULATED_DEGREES = (1, 2, 4, 8)
"""Degrees a one-GPU node emulates by default (those the model allows)."""
GPU_DECODE_CONTEXT = 1152
"""Cached tokens per decode sequence on GPU: input 1024 + output 256 / 2, the decode context tpplan assumes
for those lengths and the one the H100 reference rows use (shared/reference/gpu/README.md)."""
CPU_DECODE_CONTEXT = 256


@record
class Node:
    backend: str
    device_count: int
    device_names: list[str]
    nccl_version: tuple[int, ...] | None
    cpu_count: int = 1

    @property
    def on_gpu(self) -> bool:
        """Tensors live on GPUs (NCCL); gloo keeps them on the CPU even on a GPU node."""
        return self.backend == "nccl"


@record
class MeasureOptions:
    model: ModelSpec
    nproc: int
    backend: str
    quick: bool = False
    dtype: str = "fp32"
    tp_degrees: tuple[int, ...] | None = None
    emulate_tp: tuple[int, ...] | None = None
    timeout_s: float = 120.0
    threads: int = 1
    skip_layer: bool = False
    kernel_table: bool = True
    fail_rank: int | None = None


@record
class Launch:
    """One `python -m tpplan.kernels.<workload>` on `nproc` local ranks."""

    workload: str
    args: list[str]
    nproc: int
    say: str


def detect_node(backend: str | None = None) -> Node:
    """The node as `--backend` sees it: nccl needs CUDA; gloo (the default without CUDA) stays on the CPU."""
    import torch

    cuda = torch.cuda.is_available()
    backend = backend or ("nccl" if cuda else "gloo")
    if backend == "nccl" and not cuda:
        raise MeasurementError("--backend nccl needs CUDA GPUs and this node has none; use --backend gloo")
    if backend == "nccl":
        n = torch.cuda.device_count()
        return Node(backend="nccl", device_count=n, device_names=[torch.cuda.get_device_name(i) for i in range(n)],
                    nccl_version=tuple(torch.cuda.nccl.version()), cpu_count=os.cpu_count() or 1)
    return Node(backend="gloo", device_count=0, device_names=[], nccl_version=None, cpu_count=os.cpu_count() or 1)


def check_ranks(node: Node, nproc: int) -> list[str]:
    """Refuse more NCCL ranks than GPUs unless NCCL >= 2.30 and NCCL_MULTI_RANK_GPU_ENABLE=1 (then warn);
    warn when gloo ranks outnumber the CPU cores (they then time each other's scheduling)."""
    if node.backend == "gloo":
        return [f"--nproc {nproc} exceeds this machine's {node.cpu_count} CPU cores: ranks share cores, so "
                f"timings include waiting for a core"] if nproc > node.cpu_count else []
    if nproc <= node.device_count:
        return []
    if os.environ.get("NCCL_MULTI_RANK_GPU_ENABLE") == "1" and (node.nccl_version or (0,)) >= NCCL_MULTI_RANK:
        return [f"{nproc} NCCL ranks share {node.device_count} GPU(s) (NCCL_MULTI_RANK_GPU_ENABLE=1): collective "
                f"bandwidth here describes one GPU's memory, not a link"]
    raise MeasurementError(f"--nproc {nproc} exceeds the {node.device_count} GPU(s) of this node; use at most "
                           f"{node.device_count}, or set NCCL_MULTI_RANK_GPU_ENABLE=1 with NCCL >= 2.30")


def _collective_args(o: MeasureOptions) -> list[str]:
    cpu = o.backend == "gloo"
    # warm-up: a whole-sweep warm pass runs first (kernels/collectives.py), then these calls per size
    if o.quick:
        return ["--ops", "allreduce", "--min-bytes", "4096", "--max-bytes", str(MiB if cpu else 64 * MiB),
                "--factor", "4", "--warmup", "5", "--iters", "10" if cpu else "20", "--repeats", "5",
                "--dtype", o.dtype, "--backend", o.backend]
    return ["--min-bytes", "4096", "--max-bytes", str(16 * MiB if cpu else 256 * MiB), "--factor", "4",
            "--warmup", "5", "--iters", "20", "--repeats", "5", "--dtype", o.dtype, "--backend", o.backend]


def _token_counts(o: MeasureOptions) -> tuple[list[int], list[int]]:
    """(decode batches, prefill chunk lengths) the layer is timed at; the odd positions are held out. On GPU
    they include the reference rows' batches 1, 8, 32, 128 and prompts 1024, 4096."""
    if o.backend == "gloo":
        return ([1, 4, 16], [64, 256]) if o.quick else ([1, 2, 4, 8, 16, 32, 64], [128, 512, 2048])
    return ([1, 128], [1024]) if o.quick else ([1, 8, 32, 64, 128], [512, 1024, 2048, 4096])


def _layer_args(o: MeasureOptions, shape: LayerShape, *, emulate: int | None) -> list[str]:
    decode, prefill = (",".join(map(str, t)) for t in _token_counts(o))
    cpu = o.backend == "gloo"
    # CPU: 2 distinct layers and few windows keep the quick run under 30 s; GPU: >= 4 layers, 5 x 10 replays
    iters = (["--warmup", "2", "--iters", "3", "--repeats", "3", "--layers", "2"] if cpu else
             ["--warmup", "3", "--iters", "10", "--repeats", "3" if o.quick else "5", "--layers", "4"])
    tol = "1e-4" if o.dtype == "fp32" else "3e-2"
    context = CPU_DECODE_CONTEXT if cpu else GPU_DECODE_CONTEXT
    return [*shape.kernel_args(), "--decode-batch", decode, "--prefill-tokens", prefill, "--context", str(context),
            "--dtype", o.dtype, "--tolerance", tol, "--backend", o.backend, *iters,
            *(["--emulate-tp", str(emulate)] if emulate else [])]


def _layer_degrees(o: MeasureOptions, shape: LayerShape) -> tuple[list[int], list[int], list[str]]:
    """(real TP degrees, emulated degrees, notes). Real degrees need that many ranks (a --tp above --nproc is
    refused); one rank emulates the degrees the model allows up to 8 by default and says that communication was
    not measured."""
    notes: list[str] = []
    asked = sorted({t for t in (*(o.tp_degrees or ()), *(o.emulate_tp or ())) if not shape.tp_ok(t)})
    if asked:  # a degree the user named that the model cannot run is refused, not skipped (before --nproc's rule)
        option = "--tp" if asked[0] in (o.tp_degrees or ()) else "--emulate-tp"
        works = [t for t in range(1, 17) if shape.tp_ok(t)]
        raise MeasurementError(f"{option} {asked[0]}: {o.model.name}'s heads / KV heads / intermediate do not divide "
                               f"by {asked[0]}; degrees it allows up to 16: {', '.join(map(str, works))}")
    too_many = [t for t in o.tp_degrees or () if t > o.nproc]
    if too_many:  # a real group of t ranks beside --nproc ranks: the profile describes nproc, the fit cannot place t
        t = max(too_many)
        raise MeasurementError(f"--tp {t} needs {t} ranks but this run has {o.nproc} (--nproc); pass --nproc {t}, "
                               f"or --emulate-tp {t} to time rank 0's shard on one rank (compute only)")
    real = list(o.tp_degrees or ([o.nproc] if o.quick else [t for t in (2, 4, 8, 16) if t <= o.nproc]))
    real = [t for t in real if t > 1 or o.tp_degrees]
    emulate = list(o.emulate_tp or (EMULATED_DEGREES if o.nproc == 1 and not o.tp_degrees else ()))
    for tp in sorted(set(real + emulate)):
        if not shape.tp_ok(tp):
            notes.append(f"tp {tp} skipped: {o.model.name}'s heads / KV heads / intermediate do not divide by it")
    real = [t for t in real if shape.tp_ok(t)]
    emulate = [t for t in emulate if shape.tp_ok(t)]
    return real, emulate, notes  # the emulation note comes with the results (tpplan.measure.compare)


def plan_launches(o: MeasureOptions) -> tuple[list[Launch], list[str]]:
    """What to run, in order, and notes on what was skipped. No collectives on one rank (engines run none at
    tp 1)."""
    fail = ["--fail-rank", str(o.fail_rank)] if o.fail_rank is not None else []
    launches: list[Launch] = []
    if o.nproc > 1:
        launches.append(Launch(workload="collectives", args=_collective_args(o) + fail, nproc=o.nproc,
                               say=f"collectives on {o.nproc} ranks ({o.backend})"))
    if o.skip_layer:
        return launches, []
    shape = layer_shape(o.model, max_hidden=CPU_MAX_HIDDEN if o.backend == "gloo" else None)
    real, emulate, notes = _layer_degrees(o, shape)
    for tp in real:
        reason = _memory_problem(shape, tp, o)
        if reason:
            notes.append(f"tp {tp} skipped: {reason}")
            continue
        launches.append(Launch(workload="tp_layer", args=_layer_args(o, shape, emulate=None) + fail, nproc=tp,
                               say=f"tp_layer at tp={tp}"))
    launches += [Launch(workload="tp_layer", args=_layer_args(o, shape, emulate=t) + fail, nproc=1,
                        say=f"tp_layer, rank 0 of tp={t} emulated") for t in emulate]
    if o.kernel_table:
        degrees = sorted(set(real + emulate)) or [1]
        launches.append(Launch(workload="kernel_table", args=table_args(backend=o.backend, quick=o.quick, dtype=o.dtype,
                                                                  shape=shape, degrees=degrees) + fail, nproc=1,
                               say="per-kernel table"))
    return launches, notes


def run_workloads(o: MeasureOptions, progress: Callable[[str], None] | None = None, *,
                  launcher: Callable[..., dict] = launch) -> tuple[list[dict], list[str]]:
    """Launch the planned workloads; returns their rank-0 JSON objects and notes (skips with reasons)."""
    say = progress or (lambda _msg: None)
    launches, notes = plan_launches(o)
    results = []
    for job in launches:
        say(job.say)
        results.append(launcher(job.workload, job.args, nproc=job.nproc, timeout_s=o.timeout_s, threads=o.threads))
    return results, notes


ACTIVATION_TENSORS = 4
"""Live [tokens, intermediate]-sized tensors at the MLP's peak (gate, up, their product, the reference's copy)."""


def _memory_problem(shape: LayerShape, tp: int, o: MeasureOptions) -> str | None:
    """Each rank holds the full layer (for the reference), its shard, and the MLP activations of the largest
    prefill chunk: tokens x intermediate x ACTIVATION_TENSORS elements."""
    elem = MEASURE_DTYPE_BYTES[o.dtype]
    tokens = max(_token_counts(o)[1])
    need = (shape.shard_weight_bytes(1, elem) + shape.shard_weight_bytes(tp, elem)
            + tokens * shape.intermediate * ACTIVATION_TENSORS * elem)
    if o.backend == "nccl":
        import torch

        free, _total = torch.cuda.mem_get_info()
        if need > free:
            return f"needs {bytes_to_gib(need):.1f} GiB per GPU, {bytes_to_gib(free):.1f} GiB free"
    return None


