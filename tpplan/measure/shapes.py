"""The layer shape `tp_layer` runs: the model's own, or scaled down by one stated factor on CPU."""

from __future__ import annotations

from tpplan.errors import MeasurementError
from tpplan.models.engines import kv_heads_per_gpu
from tpplan.models.spec import ModelSpec
from tpplan.records import record


@record
class LayerShape:
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    gated: bool
    scale: int
    """hidden, head_dim and intermediate are the model's divided by this (1 = real shapes)."""
    note: str = ""

    def kernel_args(self) -> list[str]:
        args = ["--hidden", str(self.hidden), "--heads", str(self.heads), "--kv-heads", str(self.kv_heads),
                "--head-dim", str(self.head_dim), "--intermediate", str(self.intermediate)]
        return args + ([] if self.gated else ["--no-gate"])

    def tp_ok(self, tp: int) -> bool:
        kv_ok = self.kv_heads % tp == 0 or tp % self.kv_heads == 0
        return self.heads % tp == 0 and kv_ok and self.intermediate % tp == 0

    def kv_heads_local(self, tp: int) -> int:
        """KV heads one rank holds (vLLM's rule: split, or one replicated head when tp > kv heads)."""
        return kv_heads_per_gpu(self.kv_heads, tp=tp)

    def as_spec(self) -> ModelSpec:
        """This shape as a one-layer dense model (what `tp_layer` runs: no biases, no lm_head used), so that its
        predictions come from the cost model's own step functions (tpplan.cost.step.decoder_layers)."""
        return ModelSpec(name=f"tp_layer {self.hidden}x{self.intermediate}", model_type="llama",
                         hidden_size=self.hidden, num_hidden_layers=1, num_attention_heads=self.heads,
                         num_key_value_heads=self.kv_heads, head_dim=self.head_dim,
                         intermediate_size=self.intermediate, vocab_size=1, max_position_embeddings=1,
                         tie_word_embeddings=False, gated_mlp=self.gated)

    def shard_weight_bytes(self, tp: int, elem_bytes: int) -> int:
        """q, k, v, o, (gate,) up, down shards and one norm vector on one rank."""
        d, h, kv_local = self.head_dim, self.hidden, self.kv_heads_local(tp)
        mlp = (3 if self.gated else 2) * h * (self.intermediate // tp)
        return (2 * h * (self.heads // tp) * d + 2 * h * kv_local * d + mlp + h) * elem_bytes


CPU_MAX_HIDDEN = 1024
"""On CPU the layer is scaled down until hidden <= 1024 (a 2-rank quick run then takes ~15 s on 2 cores)."""


def _note(spec: ModelSpec, scale: int, width: int) -> str:
    parts = [f"{spec.name}: one expert of width {width} stands for the MoE MLP"] if spec.is_moe else []
    if spec.num_linear_layers:
        parts.append(f"the layer run is a plain attention layer: the {spec.num_linear_layers} linear-attention "
                     f"(Gated DeltaNet) layers are not measured, and the gated attention's output gate is left out")
    if scale > 1:
        parts.append(f"hidden, head_dim and intermediate scaled down {scale}x to fit this machine (heads and KV heads "
                     f"kept)")
    return "; ".join(parts)


def layer_shape(spec: ModelSpec, *, max_hidden: int | None) -> LayerShape:
    """The shape to run. With `max_hidden`, divide hidden, head_dim and intermediate by the smallest power of
    two that brings hidden under it, keeping heads, KV heads and their ratios."""
    if spec.is_mla:
        raise MeasurementError(f"{spec.name}: tp_layer measures GQA/MHA attention; MLA layers are not supported "
                               f"yet; measure a dense model (e.g. --model llama-8b) or use --skip-layer")
    width = spec.moe_intermediate_size if spec.is_moe else spec.intermediate_size
    scale = 1
    while max_hidden and spec.hidden_size // scale > max_hidden:
        nxt = scale * 2
        if spec.hidden_size % nxt or spec.head_dim % nxt or width % nxt:
            break
        scale = nxt
    return LayerShape(hidden=spec.hidden_size // scale, heads=spec.num_attention_heads,
                      kv_heads=spec.num_key_value_heads, head_dim=spec.head_dim // scale,
                      intermediate=width // scale, gated=spec.gated_mlp, scale=scale, note=_note(spec, scale, width))


def recorded_shape(recorded: dict, spec: ModelSpec) -> LayerShape:
    """The shape a tp_layer run actually used (its JSON `shape`), described relative to `spec`."""
    width = spec.moe_intermediate_size if spec.is_moe else spec.intermediate_size
    scale = max(1, spec.hidden_size // recorded["hidden"])
    if (recorded["heads"], recorded["kv_heads"], recorded["hidden"] * scale, recorded["intermediate"] * scale) != (
            spec.num_attention_heads, spec.num_key_value_heads, spec.hidden_size, width):
        raise MeasurementError(
            f"--model: the layer in the --from files is not {spec.name}'s (it had {recorded['heads']} "
            f"heads, {recorded['kv_heads']} KV heads, hidden {recorded['hidden']}, intermediate "
            f"{recorded['intermediate']}); pass the --model those files were measured with")
    return LayerShape(hidden=recorded["hidden"], heads=recorded["heads"], kv_heads=recorded["kv_heads"],
                      head_dim=recorded["head_dim"], intermediate=recorded["intermediate"], gated=recorded["gated"],
                      scale=scale, note=_note(spec, scale, width))
