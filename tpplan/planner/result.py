"""Plan: what `recommend` returns. Its own module so the explanation can read a plan's data without importing
the module that builds it. `Plan.to_dict()` is the JSON contract of `tpplan recommend -f json` (DESIGN.md §6).
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any

from tpplan.hardware.profile import HardwareProfile
from tpplan.models.spec import ModelSpec
from tpplan.planner.candidates import Candidate, too_slow_only
from tpplan.planner.workload import Workload
from tpplan.records import record

SCHEMA_VERSION = 1
"""Version of the `recommend` JSON document; bumped only when a key changes meaning (keys are never renamed)."""

CANDIDATE_KEYS = ("tp", "pp", "replicas", "gpus_used", "feasible", "reasons", "weight_bytes_per_gpu",
                  "kv_cache_bytes_per_gpu", "kv_cache_tokens", "max_concurrent_sequences", "allreduce_bytes_per_layer",
                  "ttft_s", "tpot_s", "output_tokens_per_s", "output_tokens_per_s_per_gpu", "ep", "dp_attention")
"""The keys DESIGN.md §6 promises for every candidate, in this order; other Candidate fields follow."""
_LATENCY_KEYS = ("ttft_s", "tpot_s", "step_time_s", "ttft_under_load_s", "tpot_under_load_s")


@record(frozen=False)
class Suggestion:
    """A change that would make something fit: the flag to pass and what the planner predicts with it."""

    text: str
    flag: str | None = None
    """The option and value to add, e.g. '--dtype fp8'; None when no single flag does it (e.g. ZeRO)."""
    would_give: dict[str, Any] | None = None
    """Best layout with the change applied: layout, tp, pp, replicas, gpus_used, ep, dp_attention,
    output_tokens_per_s, tpot_s, ttft_s; None when it was not re-planned or still does not fit."""

    def __str__(self) -> str:
        return self.text


@record(frozen=False)
class Plan:
    model: ModelSpec
    profile: HardwareProfile
    workload: Workload
    candidates: list[Candidate]
    recommended: Candidate | None
    explanation: list[str] = field(default_factory=list)
    suggestions: list[Suggestion] = field(default_factory=list)
    assumptions: dict[str, str] = field(default_factory=dict)
    model_query: str = ""
    """The model as the user named it (alias, HF id or config path)."""
    chosen: Candidate | None = None
    """The layout fixed by --tp/--pp/--replicas, evaluated beside the best (None when none was fixed)."""

    @property
    def unused_gpus(self) -> int:
        """GPUs the recommendation leaves idle (tp x pp x replicas < --gpus)."""
        return self.workload.gpus - self.recommended.gpus_used if self.recommended else 0

    def serve_command(self, engine: str | None = None) -> str:
        """The engine command line(s) that run the recommendation. `engine` may only name the plan's own engine (the
        default): a plan follows one engine's rules, limits and memory fraction, so another engine's command would
        run something else (as the CLI refuses --emit X with --engine Y)."""
        from tpplan.errors import TpplanError
        from tpplan.planner.emit import serve_command

        own = self.workload.engine
        if engine is not None and engine != own:
            raise TpplanError(f"serve_command({engine!r}) of a plan made for {own}: the plan follows {own}'s rules; "
                              f"call serve_command() or plan again with engine={engine!r}")
        return serve_command(self, own)

    def inputs(self) -> dict[str, Any]:
        """Every input the figures depend on, defaults included, in base units."""
        w, p = self.workload, self.profile
        return {"model": self.model_query or self.model.name, "model_name": self.model.name,
                "hf_id": self.model.hf_id, "hardware": p.name, "gpu": p.gpu.name, "nodes": p.nodes, "gpus": w.gpus,
                "engine": w.engine, "workload": w.mode, "objective": w.objective, "dtype": w.dtype,
                "kv_cache_dtype": w.kv_cache_dtype, "input_len": w.input_len, "output_len": w.output_len,
                "max_model_len": w.max_model_len, "gpu_memory_utilization": w.gpu_memory_utilization,
                "batch": w.batch, "num_requests": w.num_requests, "max_num_seqs": w.max_num_seqs,
                "max_num_batched_tokens": w.max_num_batched_tokens, "moe_imbalance": w.moe_imbalance,
                "all2all_backend": w.all2all_backend, "deepep_mode": w.deepep_mode,
                "max_tpot_s": w.max_tpot_s, "max_ttft_s": w.max_ttft_s,
                "sequence_parallel": w.sequence_parallel, "allow_cross_domain_tp": w.allow_cross_domain_tp,
                "distributed_optimizer": w.distributed_optimizer, "global_batch_size": w.global_batch,
                "price_per_gpu_hour": p.price_per_gpu_hour}

    def to_dict(self) -> dict[str, Any]:
        """The `tpplan recommend -f json` document (without `serve_command`, which --emit adds)."""
        w = self.workload
        return {"schema_version": SCHEMA_VERSION, "model": self.model.name, "hf_id": self.model.hf_id,
                "hardware": self.profile.name, "gpus": w.gpus, "objective": w.objective, "workload": w.mode,
                "inputs": self.inputs(),
                "recommended": candidate_dict(self.recommended) if self.recommended else None,
                "chosen": candidate_dict(self.chosen) if self.chosen else None,
                "unused_gpus": self.unused_gpus,
                "candidates": [candidate_dict(c) for c in self.candidates], "explanation": self.explanation,
                "suggestions": [dataclasses.asdict(s) for s in self.suggestions], "assumptions": self.assumptions}


STEP_FIELDS = ("compute_s", "communication_s", "overhead_s", "total_s")
"""The keys of `decode_step` and `prefill` (tpplan.cost.step.StepTime)."""


def candidate_row(c: Candidate) -> dict[str, Any]:
    """`candidate_dict` for a CSV row: `decode_step` and `prefill` keep their four keys when the candidate has no
    times (null cells), so that the columns are the same whatever the rows."""
    d = candidate_dict(c)
    for key in ("decode_step", "prefill"):
        if d.get(key) is None:
            d[key] = dict.fromkeys(STEP_FIELDS)
    return d


def candidate_dict(c: Candidate) -> dict[str, Any]:
    """One candidate as JSON: the promised keys first; latencies are null for a layout that cannot run (not for one
    only the latency limits reject: it runs, and its latencies are what broke them)."""
    d = dataclasses.asdict(c)
    if not c.feasible and not too_slow_only(c):
        d.update(dict.fromkeys(_LATENCY_KEYS))
    return {**{k: d[k] for k in CANDIDATE_KEYS}, **{k: v for k, v in d.items() if k not in CANDIDATE_KEYS}}
