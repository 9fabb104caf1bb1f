"""ModelSpec: the architecture of one decoder-only LLM, in Hugging Face `config.json` field names.

Built either from the built-in catalogue (`tpplan.models.catalogue`) or from any HF config.json
(`tpplan.models.hf_config.spec_from_hf_config`). Every count here is an integer; nothing is float-divided.
"""

from __future__ import annotations

from dataclasses import field
from typing import Literal

from tpplan.models.formats import WeightFormat
from tpplan.records import record

NormType = Literal["rms", "layer"]
LayerKind = Literal["full_attention", "sliding_attention", "chunked_attention", "linear_attention"]
"""'linear_attention': a Gated DeltaNet token mixer (Qwen3-Next) with no per-token KV cache: a constant per-sequence
state instead (ModelSpec.linear_* fields, tpplan.models.kv.linear_state_bytes_per_sequence)."""


@record
class ModelSpec:
    """One model's architecture. Field names follow HF config.json where HF has a name."""

    name: str
    """Display name, e.g. 'Llama-3.1-70B'."""
    model_type: str
    """HF `model_type` ('llama', 'mixtral', 'deepseek_v3', ...)."""
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    """KV heads (GQA); equals num_attention_heads for MHA, 1 for MQA."""
    head_dim: int
    """Per-head width. Read from the config when present: it is not always hidden_size // heads."""
    intermediate_size: int
    """Dense MLP width (for MoE models without dense layers: the expert width, as Mixtral spells it)."""
    vocab_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool
    gated_mlp: bool = True
    """SwiGLU-style MLP with gate, up and down matrices (3); False for GELU MLPs (2 matrices)."""
    attention_bias: bool = False
    """Bias on q/k/v projections (Qwen2, gpt-oss)."""
    o_proj_bias: bool = False
    mlp_bias: bool = False
    lm_head_bias: bool = False
    """Bias on the output projection (Phi): vocab_size parameters."""
    norm_type: NormType = "rms"
    """RMSNorm has a weight per channel; LayerNorm has weight and bias."""
    norms_per_layer: int = 2
    """Per-layer norms over hidden_size (2 for Llama; 4 for Gemma-2's sandwich norms)."""
    qk_norm: bool = False
    """Per-head RMSNorm on q and k (Qwen3): 2 x head_dim parameters per layer."""
    qk_norm_per_head: bool = False
    """The q/k norms hold one weight per channel of every head (Cohere's use_qk_norm: CohereLayerNorm((heads,
    head_dim)) and ((kv heads, head_dim)); MiniMax-M2's qk_norm_type 'per_layer': RMSNorm(heads x head_dim) and
    RMSNorm(kv heads x head_dim) over the whole projection): (heads + kv heads) x head_dim parameters per layer
    instead of 2 x head_dim."""
    qk_norm_full_width: bool = False
    """The q/k RMSNorms normalise over the whole projection, all heads together (MiniMax-M2's qk_norm_type
    'per_layer'), so under TP each rank holds a part of the sum of squares and the ranks all-reduce it
    (`tpplan.cost.coefficients.Coefficients.norm_allreduces_per_layer`); False for per-head norms."""
    attn_output_gate: bool = False
    """Gated attention (Qwen3-Next, Qwen3NextAttention): q_proj also emits a sigmoid gate per query channel,
    Linear(hidden, 2 x heads x head_dim)."""
    parallel_attn: bool = False
    """Attention and MLP read the same input and are reduced together (Falcon, GPT-J): 1 all-reduce."""
    attention_sinks: bool = False
    """One learned sink logit per head (gpt-oss)."""
    # --- Mixture of experts -------------------------------------------------------------------------
    num_experts: int = 0
    """Routed experts per MoE layer (0 = dense model)."""
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0
    """Width of one routed expert."""
    n_shared_experts: int = 0
    """Always-active experts of width moe_intermediate_size (DeepSeek)."""
    first_k_dense_replace: int = 0
    """The first k layers use a dense MLP of intermediate_size (DeepSeek)."""
    moe_layers: tuple[int, ...] = ()
    """Indices of the MoE layers when they are not all layers from first_k_dense_replace on (Llama 4 Maverick:
    every 2nd layer, the others a dense MLP of intermediate_size); empty = that default."""
    router_bias: bool = False
    expert_bias: bool = False
    """Biases on each expert's matrices (gpt-oss)."""
    router_score_bias: bool = False
    """DeepSeek-V3's e_score_correction_bias (one per expert)."""
    shared_expert_gate: bool = False
    """A sigmoid gate on the shared expert's output, Linear(hidden, 1) without bias (Qwen2-MoE / Qwen3-Next
    shared_expert_gate)."""
    num_nextn_predict_layers: int = 0
    """Multi-token-prediction layers the checkpoint holds after its decoder layers (DeepSeek-V3, GLM-4.5): used only
    as a speculative-decoding draft, not loaded by a plain serve (vLLM and transformers skip their weights), so
    neither counted nor planned; `tpplan.models.params.mtp_params` gives their size."""
    # --- Multi-head latent attention (DeepSeek-V2/V3) -----------------------------------------------
    q_lora_rank: int = 0
    """0 means a plain q projection."""
    kv_lora_rank: int = 0
    """> 0 marks an MLA model."""
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # --- Sliding-window attention --------------------------------------------------------------------
    sliding_window: int | None = None
    layer_types: tuple[LayerKind, ...] = ()
    """Per-layer attention kind; empty means every layer is full attention (or all sliding when
    sliding_window is set and no pattern is given)."""
    linear_num_key_heads: int = 0
    """Gated DeltaNet heads of q and k ('linear_attention' layers; Qwen3-Next linear_num_key_heads)."""
    linear_num_value_heads: int = 0
    """Gated DeltaNet heads of v (and of the recurrent state): linear_num_value_heads."""
    linear_key_head_dim: int = 0
    linear_value_head_dim: int = 0
    linear_conv_kernel_dim: int = 0
    """Width of the depthwise causal conv1d over q, k and v; the cache keeps the last kernel - 1 inputs."""
    attention_chunk_size: int | None = None
    """Llama 4's chunked local attention: a 'chunked_attention' layer attends only to the tokens of its own
    non-overlapping chunk of this many positions (transformers create_chunked_causal_mask)."""
    # --- Checkpoint format -------------------------------------------------------------------------
    quantization: WeightFormat | None = None
    """The checkpoint's quantized format (config.json quantization_config); None for 16-bit checkpoints."""
    checkpoint_dtype: str = ""
    """The dtype config.json names for the checkpoint's unquantized tensors (torch_dtype, or dtype in newer
    transformers): 'bf16', 'fp16' or 'fp32'; '' when it names none. `--dtype auto` serves fp16 as fp16 and the
    others as bf16 (tpplan.models.dtypes.weight_format)."""
    rope_scaling: str = ""
    """rope_scaling type ('llama3', 'yarn', 'linear', 'dynamic'), shown to the user; '' when none."""
    vision_params: int = 0
    """Parameters of a vision tower (vision-language models): reported, not planned."""
    cross_attention_layers: tuple[int, ...] = ()
    """Layers whose attention reads the image's tokens instead of the text's (mllama, `cross_attention_layers`):
    same q/k/v/o and MLP shapes as the other layers plus per-head q/k RMSNorms and two scalar gates."""
    position_embedding_rows: int = 0
    """Rows of a learned absolute position embedding (GPT-2-style `wpe`: gpt_bigcode's n_positions x hidden),
    replicated on every GPU; 0 for rotary models."""
    embedding_extra_rows: int = 0
    """Rows the input embedding holds beyond vocab_size (mllama: MllamaTextModel's nn.Embedding(vocab_size + 8));
    the lm_head keeps vocab_size rows."""
    # --- Provenance ---------------------------------------------------------------------------------
    hf_id: str = ""
    checkpoint_path: str = ""
    """The directory a config.json given by path was read from (absolute), which a serve command loads; '' for
    catalogue and Hub models, which are served by hf_id."""
    aliases: tuple[str, ...] = ()
    source: str = ""
    notes: tuple[str, ...] = field(default=())
    """Assumptions made while reading the config (shown to the user)."""
    remote_code: bool = False
    """The checkpoint's model_type has no class in transformers (kimi_k2, read as another family:
    tpplan.models.hf_families.SAME_ARCHITECTURE), so engines load its configuration (and tokenizer) from the repo's
    own code: served with --trust-remote-code (tpplan.planner.emit)."""

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                     "head_dim", "vocab_size", "max_position_embeddings"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.layer_types and len(self.layer_types) != self.num_hidden_layers:
            raise ValueError("layer_types must have one entry per layer")
        for name in ("cross_attention_layers", "moe_layers"):
            layers = getattr(self, name)
            if len(set(layers)) != len(layers) or any(not 0 <= i < self.num_hidden_layers for i in layers):
                raise ValueError(f"{name} must be distinct layer indices from 0 to {self.num_hidden_layers - 1}, "
                                 f"got {list(layers)}")
        if "chunked_attention" in self.layer_types and not self.attention_chunk_size:
            raise ValueError("chunked_attention layers need a positive attention_chunk_size")
        if "linear_attention" in self.layer_types:
            for name in ("linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim",
                         "linear_value_head_dim", "linear_conv_kernel_dim"):
                if getattr(self, name) < 1:
                    raise ValueError(f"linear_attention layers need a positive {name}, got {getattr(self, name)}")
            if self.linear_num_value_heads % self.linear_num_key_heads:
                raise ValueError(f"linear_num_value_heads ({self.linear_num_value_heads}) must be a multiple of "
                                 f"linear_num_key_heads ({self.linear_num_key_heads})")

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def q_head_dim(self) -> int:
        """Width of one query head (MLA: nope + rope part)."""
        return self.qk_nope_head_dim + self.qk_rope_head_dim if self.is_mla else self.head_dim

    def is_moe_layer(self, layer: int) -> bool:
        if self.moe_layers:
            return self.is_moe and layer in self.moe_layers
        return self.is_moe and layer >= self.first_k_dense_replace

    @property
    def num_moe_layers(self) -> int:
        if not self.is_moe:
            return 0
        return len(self.moe_layers) if self.moe_layers else self.num_hidden_layers - self.first_k_dense_replace

    @property
    def num_dense_layers(self) -> int:
        return self.num_hidden_layers - self.num_moe_layers

    def is_linear_layer(self, layer: int) -> bool:
        """A Gated DeltaNet layer (layer_types 'linear_attention'): no attention projections, no KV cache."""
        return bool(self.layer_types) and self.layer_types[layer] == "linear_attention"

    @property
    def num_linear_layers(self) -> int:
        return sum(kind == "linear_attention" for kind in self.layer_types)

    def is_chunked_layer(self, layer: int) -> bool:
        """Llama 4's chunked local attention on this layer (layer_types 'chunked_attention')."""
        return bool(self.layer_types) and self.layer_types[layer] == "chunked_attention"

    def attention_window(self, layer: int) -> int | None:
        """Tokens of a sequence a layer's attention reads at most; None for full attention; 0 for a cross-attention
        layer (mllama), whose cache holds the image's tokens, not the text's (text-only requests hold none), and for a
        linear-attention layer, which reads its recurrent state instead (ModelSpec.is_linear_layer).

        A chunked-attention layer (Llama 4) reads the (position mod chunk) + 1 tokens of its own chunk: at most
        attention_chunk_size, the bound used here. What the layer's KV *cache* holds is kv_cache_window."""
        if layer in self.cross_attention_layers or self.is_linear_layer(layer):
            return 0
        if self.is_chunked_layer(layer):
            return self.attention_chunk_size
        if self.sliding_window is None:
            return None
        if not self.layer_types:
            return self.sliding_window
        return self.sliding_window if self.layer_types[layer] == "sliding_attention" else None

    def kv_cache_window(self, layer: int) -> int | None:
        """Tokens of a sequence a layer's KV cache holds at most (None = the whole context).

        Chunked-attention layers keep the whole context: vLLM disables its hybrid KV cache manager (the only
        allocator that frees blocks of past chunks) whenever attention_chunk_size is set, unless
        VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE=1 (vllm/config/vllm.py, "There is a latency regression
        when using chunked local attention with the hybrid KV cache manager. Disabling it, by default.");
        SGLang frees them only with its opt-in hybrid cache (`--swa-full-tokens-ratio`); tpplan has no source that
        TensorRT-LLM does, so it counts the full context for every engine."""
        if self.is_chunked_layer(layer):
            return None
        return self.attention_window(layer)
