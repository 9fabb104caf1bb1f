"""`make fidelity`: tpplan's predictions against measurements nobody tuned the model to row by row.

1. GPU compute (benchmarks/data/h100_decode_prefill.csv, one H100 SXM): GPU time of a decode step / prefill of
   rank 0's shard of a TP-t model, against `decode_step(...).compute_s` / `prefill(...).compute_s` of the
   dgx-h100 profile with the harness's own (unfused PyTorch) kernel set.
2. Published TensorRT-LLM max-throughput tables (benchmarks/data/throughput.csv, in-flight batching rows):
   output tokens/s of the TP x PP group against `recommend(..., engine="trtllm")`'s candidate of that layout.
   MoE rows measured with attention data parallelism + expert parallelism (notes: "DEPn", or the 1.0 table's
   "MoE models run with --ep and enable_attention_dp") are compared with the candidate TP1 x DP-attention n x
   EP n (the tp column holds the GPU count n); per-GPU rows (metric output_throughput_per_gpu) x tp x pp GPUs.
   FP4 rows (B200, GB200) with --dtype nvfp4 and an FP8 KV cache, also reported alone (fp4_rows). Rows beyond
   the model's context (beyond_context_rows) and rows run under the MAX_UTILIZATION scheduler
   (max_utilization_rows: the 0.10 table, `runs_max_utilization`) are reported apart from the target sets.
3. vLLM 0.5.4 rows (Lambda benchmark, vllm_rows, a separate set): `recommend(..., engine="vllm")` at the runs'
   mean input / output lengths per request against the output tok/s of one finite 320-request burst.

Prints median |error|, worst, signed median per TP degree and per hardware, and order agreement by throughput
per GPU within each model / hardware / precision / length / release group; writes benchmarks/results/
(fidelity.json, excluded.csv) and docs/fidelity.png. Error = (predicted - measured) / measured.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
import statistics
import sys
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

from tpplan.cost.coefficients import coefficients
from tpplan.cost.kernels import FUSIONS
from tpplan.cost.step import decode_step, prefill
from tpplan.errors import TpplanError
from tpplan.hardware.loader import resolve_profile
from tpplan.models.resolve import resolve_model
from tpplan.planner.plan import recommend
from tpplan.units import MS

ROOT = Path(__file__).resolve().parent
DATA, RESULTS, DOCS = ROOT / "data", ROOT / "results", ROOT.parent / "docs"

MODELS = {"LLaMA v2 7B": "llama-2-7b", "LLaMA 7B": "llama-2-7b", "LLaMA v3 8B": "llama-3-8b",
          "LLaMA v3.1 8B": "llama-8b", "Llama 3.1 8B": "llama-8b", "Mixtral 8x7B": "mixtral",
          "Mixtral 8x22B": "mixtral-8x22b", "LLaMA v2 70B": "llama-2-70b", "LLaMA 70B": "llama-2-70b",
          "LLaMA v3 70B": "llama-3-70b", "LLaMA v3.1 70B": "llama-70b", "Llama 3.1 70B": "llama-70b",
          "Llama 3.3 70B": "llama-3.3-70b", "LLaMA v3.3 70B": "llama-3.3-70b", "Falcon 180B": "falcon-180b",
          "Mistral 7B": "mistral-7b", "LLaMA v3.1 405B": "llama-405b", "Llama 3.1 405B": "llama-405b",
          "Qwen3-30B-A3B": "qwen3-30b-a3b", "Qwen3 30B A3B": "qwen3-30b-a3b", "Qwen3-235B-A22B": "qwen3-235b-a22b",
          "Qwen3 235B A22B": "qwen3-235b-a22b", "DeepSeek R1": "deepseek-r1", "DeepSeek R1 0528": "deepseek-r1",
          "GPT-OSS 120B": "gpt-oss-120b", "GPT-OSS 20B": "gpt-oss-20b", "Llama 4 Scout": "llama4-scout",
          "Llama 4 Maverick": "llama4-maverick", "LLaMA v4 Maverick": "llama4-maverick", "GPTJ 6B": "gpt-j-6b"}
"""Published model names -> tpplan catalogue names (the rest are not in the catalogue). Llama 4 rows ran the
Instruct checkpoints' text model (ModelOpt FP8 / NVFP4 exports of meta-llama/Llama-4-*-Instruct, row notes); the
catalogue entries are those Instruct configs, planned at the row's precision."""
HARDWARE = {"H100-SXM-80GB": "dgx-h100", "H200-SXM-141GB": "hgx-h200", "A100-SXM4-80GB": "dgx-a100-80g",
            "L40S-48GB": "l40s-pcie", "B200-180GB": "dgx-b200", "GB200-192GB(NVL72)": "gb200-nvl72",
            "GH200-120GB": "gh200-quad", "GH200-96GB(480GB LPDDR5X)": "gh200-96gb", "GH200-96GB": "gh200-96gb",
            "RTX-PRO-6000-Blackwell-Server": "rtx-pro-6000-server"}
"""GH200-120GB is nvidia-smi's name for the 96 GB HBM3 superchip with 120 GB LPDDR5X, the 4-per-node NVLink part
(hardware_profiles/gh200-quad.yaml; the tables' TP2/TP4 rows do not state the fabric); the 96 GB rows are TP1 on
one superchip. RTX PRO 6000 Server rows ran 8 GPUs on PCIe (row notes)."""
PCIE_HARDWARE = ("L40S-48GB", "RTX-PRO-6000-Blackwell-Server")
"""PCIe-only systems in the tables, where TP8 can be slower than TP4."""
STATIC_BATCHING_RELEASES = {"0.5.0", "0.7.0", "0.8.0", "0.9.0"}
"""TensorRT-LLM 0.5-0.9 tables measured static batching at the batch shown (data/README.md)."""
PRECISION = {"FP8": ("fp8", "fp8"), "FP16": ("fp16", "fp16"), "FP16/BF16 (doc: Mixed)": ("bf16", "bf16"),
             "FP4": ("nvfp4", "fp8")}
"""Published precision -> (weight dtype, KV dtype): the TensorRT-LLM FP8 engines use an FP8 KV cache (README).
FP4 rows ran NVIDIA's ModelOpt pre-quantized checkpoints (row notes); ModelOpt's NVFP4 export writes
hf_quant_config.json with "quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8", "group_size": 16 (TensorRT-LLM
docs, features/quantization.html: pre-quantized ModelOpt checkpoints run as exported)."""
TABLE_REQUESTS_017 = {(128, 128): 30000, (128, 2048): 3000, (128, 4096): 1500, (2048, 128): 3000, (2048, 2048): 1500,
                      (5000, 500): 1500, (1000, 1000): 3000, (500, 2000): 3000, (20000, 2000): 1000}
TABLE_REQUESTS_019 = TABLE_REQUESTS_017 | {(1000, 2000): 1500}
TABLE_REQUESTS_011 = {k: v for k, v in TABLE_REQUESTS_017.items()
                      if k in {(128, 128), (128, 2048), (128, 4096), (2048, 128), (2048, 2048)}}
NUM_REQUESTS = {
    # 0.10: gptManagerBenchmark runs of 2000 requests (its "Preparing a Dataset" gives --num-requests=2000 and no
    # per-length counts)
    "0.10.0": 2000,
    # each release's docs/source/performance/perf-overview.md, "Preparing a Dataset": $num_requests per ISL/OSL
    # (github.com/NVIDIA/TensorRT-LLM; the index file ids in throughput.csv's source column): 0.11 and 0.12 list the
    # first five lengths of the 0.17 table ("For each input and output sequence length combination, the table below
    # details the $num_requests that were used"; the 2000 of 0.11's command template, copied into its rows' notes,
    # is not what ran), 0.17 nine, 0.19 / 0.20 / 0.21 / 1.0 add 1000/2000
    "0.11.0": TABLE_REQUESTS_011, "0.12.0": TABLE_REQUESTS_011,
    "0.17": TABLE_REQUESTS_017, "0.19.0": TABLE_REQUESTS_019, "0.20.0": TABLE_REQUESTS_019,
    "0.21": TABLE_REQUESTS_019, "1.0": TABLE_REQUESTS_019,
    # 1.1/1.2-era main: docs/source/developer-guide/perf-overview.md (commit 03e27c7d)
    "1.1/1.2-era main": {(1024, 1024): 3000, (8192, 1024): 1500, (1024, 8192): 1500, (32768, 1024): 1000,
                         (1024, 32768): 1000},
}
"""Requests in the dataset of a TensorRT-LLM max-throughput run (a release -> one count, or -> (isl, osl) -> count).
All of them are queued at t=0, so no more sequences than that ever run at once (the row is compared at
min(tpplan's concurrency, num_requests)), and a run of few waves ends in an under-filled one: each row is planned
with recommend(num_requests=...), the job tpplan plans for `--num-requests`. Releases and lengths not listed are
compared at steady state."""


def num_requests(r: dict) -> int | None:
    """The request count of a published row's run (NUM_REQUESTS), None where no source states it."""
    count = NUM_REQUESTS.get(r["engine_version"])
    return count.get((int(r["isl"]), int(r["osl"]))) if isinstance(count, dict) else count


CHECKPOINT_FORMAT_MODELS = {"GPT-OSS 20B", "GPT-OSS 120B"}
"""Rows run in the checkpoint's own format (--dtype auto: openai/gpt-oss-*, MXFP4 experts): the 1.1 perf-overview
lists neither model among its ModelOpt FP4 / FP8 checkpoints, and its GPT-OSS llm_options set kv_cache_config
dtype fp8 with "Hopper: use auto" (the 16-bit activation dtype); the "(FP8)" of its H100 / H200 columns names no
checkpoint."""
VLLM_WORKLOAD = {"Mistral-7B-Instruct-v0.3": ("mistral-7b", 73671, 71810, "1xH100-80GB-SXM/Mistral-7B-Instruct-v0.3"),
                 "Meta-Llama-3.1-8B-FP8": ("llama-8b", 65578, 42874, "4xH100-80GB-SXM/Meta-Llama-3.1-8B-FP8_tp4"),
                 "Mixtral-8x7B-Instruct-v0.1": ("mixtral", 73671, 70216,
                                                "4xH100-80GB-SXM/Mixtral-8x7B-Instruct-v0.1_tp4"),
                 "Mixtral-8x22B-Instruct-v0.1": ("mixtral-8x22b", 73671, 71287,
                                                 "4xH100-80GB-SXM/Mixtral-8x22B-Instruct-v0.1_tp4"),
                 "Hermes-3-Llama-3.1-405B-FP8": ("llama-405b", 65578, 68221,
                                                 "8xH100-80GB-SXM/Hermes-3-Llama-3.1-405B-FP8_tp8")}
"""Lambda vLLM benchmark (vLLM 0.5.4, benchmark_serving, 320 prompts at request rate inf, max-model-len 2000):
model -> (tpplan model, total input tokens, total output tokens of the 320 requests, result file). Totals are
the `total_input_tokens` / `total_output_tokens` of github.com/LambdaLabsML/vllm-benchmark
results/prompt_320/<file>_len2000.json (one run per model: the inputs are the same 320 prompts in every run,
65,578 tokens with the Llama-3.1 tokenizer, 73,671 with Mistral's; outputs differ by model, and between runs of
one model by a few percent, e.g. Llama-3.1-8B-FP8 42,874 at TP4 on H100 vs 44,041 at TP1 on A100). The workload
is their means per request. Mistral-7B v0.3 differs from the catalogue's v0.1 only in vocabulary (32,768 vs
32,000) and sliding window (none vs 4,096, beyond these 2,000-token sequences); Hermes-3 is a Llama-3.1-405B
fine-tune. Llama-3.1-70B-FP8, Mistral-Nemo and Mistral-Large rows are left out (no token totals read / not in
the catalogue)."""
VLLM_HARDWARE = {"H100-SXM-80GB": "dgx-h100", "A100-SXM4-80GB": "dgx-a100-80g"}
VLLM_PROMPTS, VLLM_MAX_MODEL_LEN = 320, 2000


def gpu_rows() -> list[dict]:
    profile = resolve_profile("dgx-h100")[0]
    out = []
    for r in csv.DictReader(open(DATA / "h100_decode_prefill.csv")):
        spec, tp = resolve_model(r["model"]).spec, int(r["tp"])
        c = coefficients(spec, profile, tp=tp, fusion=FUSIONS["torch"], sustained=False)  # short replays
        if r["mode"] == "decode":
            pred = decode_step(c, profile, batch=int(r["batch"]), context_len=int(r["context"])).compute_s
        else:
            pred = prefill(c, profile, prompts=1, input_len=int(r["tokens"])).compute_s
        out.append({"model": r["model"], "tp": tp, "mode": r["mode"], "size": int(r["batch"] or r["tokens"]),
                    "hardware": "H100-SXM-80GB", "measured": float(r["step_ms"]) * MS, "predicted": pred})
    return out


def _why_excluded(r: dict) -> str | None:
    if r["engine"] != "TensorRT-LLM":  # the vLLM rows have their own set (vllm_rows)
        return f"engine {r['engine']}: lengths not fixed (ShareGPT-like) or not a max-throughput table"
    if r["engine_version"] in STATIC_BATCHING_RELEASES:
        return "static batching (gptSessionBenchmark) at a fixed batch: tpplan models in-flight batching"
    if r["metric"] not in ("total_output_throughput", "output_throughput_per_gpu"):
        return f"metric {r['metric']} (TTFT, latency)"
    if r["model"] not in MODELS:
        return f"model {r['model']} not in the tpplan catalogue"
    if r["hardware"] not in HARDWARE:
        return f"hardware {r['hardware']} has no built-in profile"
    if r["precision"] not in PRECISION:
        return f"precision {r['precision']} has no weight / KV dtype mapping here"
    return None


def _moe_layout(r: dict, gpus: int) -> tuple[int, int, int]:
    """(tp, dp_attention, ep) of a row: attention DP + EP over the row's GPUs where its notes say so for an MoE
    model (DEPn, or the 1.0 table's '--ep and enable_attention_dp'), else plain TP."""
    is_moe = resolve_model(MODELS[r["model"]]).spec.is_moe
    if gpus > 1 and is_moe and ("DEP" in r["notes"] or "run with --ep and enable_attention_dp" in r["notes"]):
        return 1, gpus, gpus
    return gpus, 1, 1


def _engine_limit(notes: str, key: str) -> int | None:
    """The engine limit a row's notes state (e.g. 'max_num_tokens 2048'), passed as the engine's own flag."""
    m = re.search(rf"{key}\s*[=:]?\s*(\d+)", notes)
    return int(m.group(1)) if m else None


TRTLLM_BENCH_RELEASES = {"0.17", "0.19.0", "0.20.0", "0.21", "1.0", "1.1/1.2-era main"}
"""Releases whose tables were measured with trtllm-bench sizing the engine from memory (tuning.py)."""
TRTLLM_BENCH_012_CONFIG = {
    "LLaMA v2 7B": {1: {"general": (4096, 8192)}},
    "LLaMA v2 70B": {2: {"general": (2048, 2048)}, 4: {"general": (4096, 8192), 4224: (256, 8192)},
                     8: {"general": (8192, 16384), 2176: (1024, 16384)}},
    "Falcon 180B": {4: {"general": (4096, 8192)}, 8: {"general": (2048, 8192)}},
    "LLaMA v3 8B": {1: {"general": (2048, 8192)}},
    "LLaMA v3 70B": {1: {"general": (2048, 2048)}, 2: {"general": (256, 1024), 4096: (2048, 1024)},
                     4: {"general": (2048, 1024)}, 8: {"general": (8192, 16384)}},
    "Mixtral 8x7B": {2: {"general": (2048, 3072)}, 4: {"general": (8192, 8192)}},
    "Mistral 7B": {1: {"general": (4098, 8192)}},
}
"""0.12.0 table -> TP -> {max_seq_len or "general": (max_batch_size, max_num_tokens)}: trtllm-bench of that era
built engines from a lookup table, not from memory: tensorrt_llm/bench/build/build.py get_benchmark_engine_settings
(`tensorrt_llm.hlapi` era) reads tensorrt_llm/bench/build/benchmark_config.yml[model][f"tp{tp}_pp{pp}"], the entry
keyed by the dataset's max sequence length (isl + osl) if present, else "general" (github.com/NVIDIA/TensorRT-LLM,
benchmark_config.yml at commit 8fcf9fc2; copied as printed, 4098 included). That version is the one whose model /
TP entries match the 0.12 table's rows exactly (an earlier version has no Llama-3-70B TP2, which the table has)."""
TRTLLM_011_CONFIG = {
    "GPTJ 6B": {1: {"general": (128, 2048), 256: (2048, 2048)}},
    "Falcon 180B": {4: {"general": (4096, 8192)}, 8: {"general": (2048, 8192)}},
    "LLaMA v2 7B": {1: {"general": (4096, 8192)}},
    "LLaMA v2 70B": {2: {"general": (2048, 2048)}, 4: {"general": (4096, 8192), 4224: (256, 8192)},
                     8: {"general": (8192, 16384), 2176: (1024, 16384)}},
    "LLaMA v3 8B": {1: {"general": (2048, 8192)}},
    "LLaMA v3 70B": {4: {"general": (2048, 1024)}, 8: {"general": (8192, 16384)}},
    "Mixtral 8x7B": {2: {"general": (2048, 3072)}, 4: {"general": (8192, 8192)}},
    "Mistral 7B": {1: {"general": (4098, 8192)}},
}
"""0.11.0 table -> TP -> {isl + osl or "general": (max_batch_size, max_num_tokens)}: the engines of that table were
built with trtllm-build --max_batch_size $max_batch_size --max_num_tokens $max_num_tokens from the per-model
settings its perf-overview lists ("Network Configuration Files and Settings", github.com/NVIDIA/TensorRT-LLM/blob/
v0.11.0/docs/source/performance/perf-overview.md; columns $tp_size, $max_num_tokens, $max_batch_size, ISL/OSL,
"General" unless a length pair is named; copied as printed, 4098 included), the same form as TRTLLM_BENCH_012_CONFIG."""
TRTLLM_TABLE_CONFIG = {"0.11.0": TRTLLM_011_CONFIG, "0.12.0": TRTLLM_BENCH_012_CONFIG}
"""Releases whose engine limits come from a table the release's docs print (not from trtllm-bench's tuning)."""
TRTLLM_BENCH_BYTES = {"fp8": 1.0, "nvfp4": 0.5}
"""trtllm-bench's BYTES_PER_ELEM by quant algo (2 for anything else)."""
TRTLLM_BENCH_TUNED = {"fp8", "nvfp4", "bf16", "fp16"}
"""Weight formats whose runs trtllm-bench sizes with tuning.py: its TUNED_QUANTS (NVFP4, FP8, FP8_BLOCK_SCALES,
NO_QUANT, None; tensorrt_llm/bench/build/build.py get_benchmark_engine_settings). Any other quant_algo -- the MXFP4
checkpoints of CHECKPOINT_FORMAT_MODELS load as W4A16_MXFP4 / W4A8_MXFP4_* (tensorrt_llm/_torch/model_config.py
get_mxfp4_quant_algo) -- runs with the LLM API defaults max_batch_size 2048, max_num_tokens 8192, which are
tpplan's trtllm defaults (no override passed)."""
TRTLLM_BENCH_KV_FRACTION = 0.95
"""calc_engine_setting's kv_cache_gpu_mem_fraction default."""


def trtllm_bench_settings(spec, *, tp: int, pp: int, isl: int, osl: int, dtype: str, kv_dtype: str,
                          device_bytes: int) -> tuple[int, int]:
    """(max_batch_size, max_num_tokens) that trtllm-bench chose for a run: tensorrt_llm/bench/build/tuning.py
    (calc_engine_setting + finetune_setting): requests whose input + output KV fit in 0.95 x (all GPUs' memory -
    parameters x bytes per element), capped at 4096 / pp and rounded up (64 at least; to 32 below 256, 128 below
    1024, else 256); tokens = that batch x (1 + isl / osl), at most 32768, rounded up to 256 / 512 / 1024 (2048
    at least). Not tpplan's trtllm defaults (2048 / 8192): those of `trtllm-serve`."""
    from tpplan.models.params import total_params

    kv_per_token = 2 * spec.num_hidden_layers * max(tp, spec.num_key_value_heads) * spec.head_dim \
        * TRTLLM_BENCH_BYTES.get(kv_dtype, 2)
    engine_bytes = total_params(spec) * TRTLLM_BENCH_BYTES.get(dtype, 2)
    cache = (device_bytes * tp * pp - engine_bytes) * TRTLLM_BENCH_KV_FRACTION
    raw_bs = min(cache / (kv_per_token * (isl + osl)), 4096) / pp
    raw_tokens = min(raw_bs * (1 + isl / osl), 32768)
    if raw_bs < 256:
        bs = max(64, 32 * math.ceil(raw_bs / 32))
    else:
        bs = (128 if raw_bs < 1024 else 256) * math.ceil(raw_bs / (128 if raw_bs < 1024 else 256))
    step = 256 if raw_tokens < 4096 else 512 if raw_tokens < 8192 else 1024
    return bs, max(2048, step * math.ceil(raw_tokens / step))


def _engine_settings(r: dict, *, tp: int, pp: int, dtype: str, kv_dtype: str) -> dict:
    """recommend() options for the engine limits and KV fraction a row ran with: stated in its notes, else what
    trtllm-bench chose (0.12: TRTLLM_BENCH_012_CONFIG; releases in TRTLLM_BENCH_RELEASES: tuning.py), else
    tpplan's trtllm defaults. 0.11 rows take the limits their doc's build settings list (TRTLLM_011_CONFIG)."""
    notes = r["notes"]
    bs, tokens = _engine_limit(notes, "max_batch_size"), _engine_limit(notes, "max_num_tokens")
    table = TRTLLM_TABLE_CONFIG.get(r["engine_version"], {}).get(r["model"], {}).get(tp)
    if bs is None and tokens is None and table and pp == 1:
        bs, tokens = table.get(int(r["isl"]) + int(r["osl"]), table["general"])
    elif bs is None and tokens is None and r["engine_version"] in TRTLLM_BENCH_RELEASES and dtype in TRTLLM_BENCH_TUNED:
        spec = resolve_model(MODELS[r["model"]]).spec
        device = resolve_profile(HARDWARE[r["hardware"]])[0].gpu.memory_bytes
        bs, tokens = trtllm_bench_settings(spec, tp=tp, pp=pp, isl=int(r["isl"]), osl=int(r["osl"]), dtype=dtype,
                                           kv_dtype=kv_dtype, device_bytes=device)
    m = re.search(r"kv_cache_free_gpu_mem_fraction\s*([0-9.]+)", notes)
    return {"max_num_seqs": bs, "max_num_batched_tokens": tokens} | (
        {"gpu_memory_utilization": float(m.group(1))} if m else {})


def _dtypes(r: dict) -> tuple[str, str]:
    """(weight dtype, KV dtype) of a row: its precision column's, or for CHECKPOINT_FORMAT_MODELS the checkpoint's
    own format with a 16-bit KV cache on Hopper."""
    dtype, kv = PRECISION[r["precision"]]
    if r["model"] in CHECKPOINT_FORMAT_MODELS:
        return "auto", "bf16" if r["hardware"].startswith(("H100", "H200")) else kv
    return dtype, kv


def trtllm_model(name: str):
    """The model as the TensorRT-LLM runs of these tables served it: a model-wide `sliding_window` with no per-layer
    pattern (Mistral 7B v0.1: 4096) is not applied. TensorRT-LLM keeps every token's KV unless the run sets
    KvCacheConfig.max_attention_window (tensorrt_llm/llmapi/llm_args.py: default None; "Only the last tokens will be
    stored in the KV cache" when given), and trtllm-bench / gptManagerBenchmark runs do not set it. The tables agree:
    Mistral 7B and Llama 3.1 8B (full attention, same layer shapes but the vocabulary) reach the same output tok/s
    at 20000/2000 on every GPU of the 0.17 table (H100 1373 vs 1401, H200 1823 vs 1804, A100 332 vs 330), where a
    4096-token window would read about 5x less KV per step. Models with per-layer windows (Gemma 2/3, GPT-OSS) keep
    them: TensorRT-LLM reads those patterns from the checkpoint config."""
    spec = resolve_model(name).spec
    if spec.sliding_window is not None and not spec.layer_types:
        return replace(spec, sliding_window=None)
    return name


RUNTIMES = {"pytorch": "PyTorch backend (0.19-1.2)", "tensorrt": "TensorRT engines, C++ runtime (0.11-0.17)"}
"""The two generations of TensorRT-LLM the tables measured, as each row's notes state them."""


def _runtime(r: dict) -> str:
    """"pytorch" for rows measured on TensorRT-LLM's PyTorch backend (trtllm-bench --backend pytorch, no engine
    build), "tensorrt" for rows run on built TensorRT engines (C++ runtime)."""
    return "pytorch" if "PyTorch backend" in r["notes"] else "tensorrt"


def runs_max_utilization(r: dict) -> bool:
    """True for rows whose runs used TensorRT-LLM's MAX_UTILIZATION capacity scheduler (the 0.10 table:
    gptManagerBenchmark --scheduler_policy max_utilization, engines built with --max_input_len 2048). Under KV
    pressure it admits requests on one step's blocks and, when blocks run out, pauses the latest started ones, frees
    their KV and re-runs prompt + generated tokens as a new context (tokens beyond max_input_len are dropped and
    generated again): cpp/tensorrt_llm/batch_manager/capacityScheduler.cpp (MaxUtilizationScheduler) and
    LlmRequest::pause. tpplan models the default GUARANTEED_NO_EVICT (a request is admitted with blocks for
    input + output and never paused), so these rows are reported on their own (max_utilization_rows), outside
    the sets the targets name."""
    return "scheduler_policy max_utilization" in r["notes"]


def _layout_candidate(plan, layout):
    return next((c for c in plan.candidates if (c.tp, c.dp_attention, c.ep, c.pp, c.replicas) == layout), None)


def published_rows() -> tuple[list[dict], list[dict]]:
    kept, excluded = [], []
    for r in csv.DictReader(open(DATA / "throughput.csv")):
        if r["engine"] == "vLLM":
            continue
        why = _why_excluded(r)
        tp, pp = int(r["tp"] or 1), int(r["pp"] or 1)
        if why is None:
            dtype, kv = _dtypes(r)
            isl, osl = int(r["isl"]), int(r["osl"])
            model, beyond = _as_run(trtllm_model(MODELS[r["model"]]), isl + osl)
            try:
                plan = recommend(model, hardware=HARDWARE[r["hardware"]], gpus=tp * pp, engine="trtllm",
                                 dtype=dtype, kv_cache_dtype=kv, input_len=isl, output_len=osl,
                                 max_model_len=isl + osl, allow_cross_domain_tp=True,
                                 **_engine_settings(r, tp=tp, pp=pp, dtype=dtype, kv_dtype=kv),
                                 num_requests=num_requests(r))
            except TpplanError as exc:
                why = f"tpplan refuses the inputs: {exc}"
            else:
                layout = (*_moe_layout(r, tp), pp, 1)
                cand = _layout_candidate(plan, layout)
                if cand is None or not cand.feasible:
                    why = "tpplan predicts the layout infeasible: " + ("; ".join(cand.reasons) if cand else "absent")
        base = {k: r[k] for k in ("model", "hardware", "precision", "isl", "osl", "engine_version")} | {"tp": tp,
                                                                                                       "pp": pp}
        if why:
            excluded.append(base | {"value": r["value"], "metric": r["metric"], "reason": why})
        else:
            per_gpu = r["metric"] == "output_throughput_per_gpu"
            kept.append(base | {"measured": float(r["value"]) * (tp * pp if per_gpu else 1),
                                "predicted": cand.output_tokens_per_s, "moe": plan.model.is_moe,
                                "layout": "DEP" if cand.dp_attention > 1 else "TP", "batch": cand.batch,
                                "runtime": _runtime(r), "max_utilization": runs_max_utilization(r),
                                "beyond_context": beyond})
    return kept, excluded


def published_sets() -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    """(rows within the model's context run under the default scheduler -- the sets the targets name --, rows beyond
    the context, rows run under MAX_UTILIZATION (`runs_max_utilization`) within it, rows left out) of the published
    TensorRT-LLM tables."""
    every, excluded = published_rows()
    return ([r for r in every if not r["beyond_context"] and not r["max_utilization"]],
            [r for r in every if r["beyond_context"]],
            [r for r in every if not r["beyond_context"] and r["max_utilization"]], excluded)


def _as_run(model, seq_len: int):
    """(model, beyond): the catalogue model, or -- when a row's input + output exceeds its context, which tpplan
    refuses for users but TensorRT-LLM's benchmark ran anyway (engine max_seq_len = isl + osl) -- its spec with
    the context raised to the row's length, flagged so that those rows are reported apart (beyond_context_rows)."""
    spec = resolve_model(model).spec if isinstance(model, str) else model
    if seq_len <= spec.max_position_embeddings:
        return model, False
    return replace(spec, max_position_embeddings=seq_len), True


def _why_vllm_excluded(r: dict) -> str | None:
    if r["metric"] != "total_output_throughput":
        return f"vLLM {r['metric']}: median ITL / TPOT of a finite wave, not a steady-state figure tpplan gives"
    if r["model"] not in VLLM_WORKLOAD:
        return f"vLLM model {r['model']}: not in the catalogue, or no token totals read from its result JSON"
    if r["hardware"] not in VLLM_HARDWARE:
        return f"vLLM hardware {r['hardware']}: not stated per row"
    return None


def vllm_rows() -> tuple[list[dict], list[dict]]:
    """The Lambda vLLM 0.5.4 rows: `recommend(engine="vllm")` at the run's mean input / output length per request,
    max-model-len 2000 and vLLM's default limits, against output tok/s of the 320-request run. The run is one
    finite burst (all 320 requests at t=0, 12-60 s), the prediction tpplan's steady state; no wave correction
    (`--num-requests` models uniform requests that finish together; these lengths vary, and the longest sets the end).
    FP8 rows are FP8 weights with vLLM's default KV dtype ("auto" = the bf16 activation dtype)."""
    kept, excluded = [], []
    for r in csv.DictReader(open(DATA / "throughput.csv")):
        if r["engine"] != "vLLM":
            continue
        tp = int(r["tp"] or 1)
        base = {"model": r["model"], "hardware": r["hardware"], "precision": r["precision"], "tp": tp, "pp": 1,
                "isl": "", "osl": "", "engine_version": r["engine_version"]}
        why = _why_vllm_excluded(r)
        if why is None:
            name, total_in, total_out, _ = VLLM_WORKLOAD[r["model"]]
            isl, osl = round(total_in / VLLM_PROMPTS), round(total_out / VLLM_PROMPTS)
            base |= {"isl": isl, "osl": osl}
            dtype = "fp8" if r["precision"] == "FP8" else "bf16"
            plan = recommend(name, hardware=VLLM_HARDWARE[r["hardware"]], gpus=tp, engine="vllm", dtype=dtype,
                             kv_cache_dtype="bf16", input_len=isl, output_len=osl, max_model_len=VLLM_MAX_MODEL_LEN)
            cand = next((c for c in plan.candidates if (c.tp, c.pp, c.replicas, c.ep) == (tp, 1, 1, 1)), None)
            if cand is None or not cand.feasible:
                why = "vLLM: tpplan predicts the layout infeasible: " + ("; ".join(cand.reasons) if cand else "absent")
        if why:
            excluded.append(base | {"value": r["value"], "metric": r["metric"], "reason": why})
        else:
            kept.append(base | {"measured": float(r["value"]), "predicted": cand.output_tokens_per_s,
                                "moe": plan.model.is_moe, "layout": "TP"})
    return kept, excluded


def error_stats(rows: list[dict], by: str) -> dict:
    errs = [r["predicted"] / r["measured"] - 1 for r in rows]
    groups = defaultdict(list)
    for r, e in zip(rows, errs, strict=True):
        groups[r[by]].append(e)
    return {"rows": len(rows), "median_abs_error_pct": 100 * statistics.median(abs(e) for e in errs),
            "worst_error_pct": 100 * max(errs, key=abs),
            f"signed_median_pct_by_{by}": {str(k): round(100 * statistics.median(v), 1)
                                           for k, v in sorted(groups.items())}}


def tp_pairs(rows: list[dict]):
    """Per-GPU (measured a, measured b, predicted a, predicted b) of every pair of layouts with different TP in one
    model / hardware / precision / length / release group (throughput / (tp x pp))."""
    groups = defaultdict(list)
    for r in rows:
        groups[(r["model"], r["hardware"], r["precision"], r["isl"], r["osl"], r["engine_version"])].append(r)
    for members in groups.values():
        for a, b in itertools.combinations(members, 2):
            if a["tp"] != b["tp"]:
                ga, gb = a["tp"] * a["pp"], b["tp"] * b["pp"]
                yield a["measured"] / ga, b["measured"] / gb, a["predicted"] / ga, b["predicted"] / gb


def order_agreement(rows: list[dict]) -> dict:
    """Pairs of layouts with different TP in one model/hardware/precision/length/release group (`tp_pairs`): does
    the prediction order them by throughput per GPU as the measurement does?"""
    agree = total = 0
    for ma, mb, pa, pb in tp_pairs(rows):
        total += 1
        agree += (ma > mb) == (pa > pb)
    return {"pairs": total, "agreement_pct": 100 * agree / total if total else None}


SEPARATION_BINS = (0.02, 0.05, 0.10, 0.16)
"""Upper edges of the bins of `misorders_by_separation` (per-GPU throughput ratio - 1 in the tables)."""


def misorders_by_separation(rows: list[dict]) -> dict:
    """The pairs of `order_agreement`, binned by how far apart the tables put them (larger / smaller per-GPU
    throughput - 1): pairs and misordered pairs per bin. Close calls are where a model's error flips the order."""
    edges = (0.0, *SEPARATION_BINS, math.inf)
    names = [f"{100 * lo:g}-{100 * hi:g}%" if hi != math.inf else f">={100 * lo:g}%"
             for lo, hi in itertools.pairwise(edges)]
    out = {n: {"pairs": 0, "misordered": 0} for n in names}
    for ma, mb, pa, pb in tp_pairs(rows):
        sep = max(ma, mb) / min(ma, mb) - 1
        name = names[next(i for i, hi in enumerate(edges[1:]) if sep < hi)]
        out[name]["pairs"] += 1
        out[name]["misordered"] += (ma > mb) != (pa > pb)
    return out


def measured_order_across_releases(rows: list[dict]) -> dict:
    """How far the tables agree with each other: for two releases that measured the same model (catalogue name) /
    hardware / precision / lengths at the same two layouts, do both order them alike by throughput per GPU? A
    model that does not know the release cannot be expected to order pairs better than the tables reproduce
    their own order."""
    cells = defaultdict(dict)
    for r in rows:
        key = (MODELS[r["model"]], r["hardware"], r["precision"], r["isl"], r["osl"])
        cells[key].setdefault(r["engine_version"], {})[(r["tp"], r["pp"])] = r["measured"] / (r["tp"] * r["pp"])
    agree = total = 0
    for releases in cells.values():
        for a, b in itertools.combinations(releases.values(), 2):
            for x, y in itertools.combinations(sorted(set(a) & set(b)), 2):
                if x[0] != y[0]:
                    total += 1
                    agree += (a[x] > a[y]) == (b[x] > b[y])
    return {"pairs": total, "agreement_pct": 100 * agree / total if total else None}


def _pair_cells(rows: list[dict]):
    """(cell, measured a > b, predicted a > b) per GPU for every pair of `tp_pairs`, the cell naming what a
    prediction that does not know the release sees: catalogue model, hardware, precision, lengths and the two
    layouts (tp, pp, layout), in a fixed order."""
    groups = defaultdict(list)
    for r in rows:
        groups[(r["model"], r["hardware"], r["precision"], r["isl"], r["osl"], r["engine_version"])].append(r)
    for (model, *rest, _release), members in groups.items():
        for a, b in itertools.combinations(members, 2):
            if a["tp"] == b["tp"]:
                continue
            if (a["tp"], a["pp"]) > (b["tp"], b["pp"]):
                a, b = b, a
            ga, gb = a["tp"] * a["pp"], b["tp"] * b["pp"]
            cell = (MODELS.get(model, model), *rest, (a["tp"], a["pp"], a.get("layout")),
                    (b["tp"], b["pp"], b.get("layout")))
            yield cell, a["measured"] / ga > b["measured"] / gb, a["predicted"] / ga > b["predicted"] / gb


def release_agnostic_ceiling(rows: list[dict]) -> dict:
    """How much of `order_agreement` the tables leave to the model. A prediction that does not know the release
    orders a cell's pair the same way in every release that measured it, so where releases disagree at most the
    majority can agree: `ceiling_pct` is that best agreement over all pairs. `split_cells`: cells whose releases
    disagree; `misordered_in_agreed_cells`: tpplan's misordered pairs in cells every release orders alike (errors of
    the model, not disagreements of the tables)."""
    cells = defaultdict(list)
    for cell, measured, predicted in _pair_cells(rows):
        cells[cell].append((measured, predicted))
    total = sum(len(v) for v in cells.values())
    best = sum(max(sum(m for m, _ in v), sum(not m for m, _ in v)) for v in cells.values())
    split = {c for c, v in cells.items() if len({m for m, _ in v}) > 1}
    return {"pairs": total, "ceiling_pct": 100 * best / total if total else None, "split_cells": len(split),
            "misordered_in_agreed_cells": sum(m != p for c, v in cells.items() if c not in split for m, p in v)}


def _moe_report(rows: list[dict]) -> dict:
    """The MoE rows alone: error per TP degree (GPU count), per layout (TP vs DEP = attention DP + EP) and per
    model; `without_fp4`: the 16-bit and FP8 rows."""
    moe = [r for r in rows if r["moe"]]
    if not moe:
        return {"rows": 0}
    no_fp4 = [r for r in moe if r["precision"] != "FP4"]
    return (error_stats(moe, "tp") | {"by_layout": error_stats(moe, "layout")["signed_median_pct_by_layout"]}
            | order_agreement(moe)
            | {"without_fp4": {k: v for k, v in error_stats(no_fp4, "layout").items() if k != "worst_error_pct"},
               "by_model": error_stats(moe, "model")["signed_median_pct_by_model"]})


def pcie_tp8_below_tp4(rows: list[dict]) -> dict:
    """On PCIe systems, the groups where the table shows TP8 slower per group than TP4: does tpplan too?
    (TP = the row's GPU count: the RTX PRO 6000 MoE rows ran attention DP + EP over those GPUs.)"""
    pairs = defaultdict(dict)
    for r in rows:
        if r["hardware"] in PCIE_HARDWARE and r["pp"] == 1 and r["tp"] in (4, 8):
            pairs[(r["hardware"], r["model"], r["precision"], r["isl"], r["osl"], r["engine_version"])][r["tp"]] = r
    shown = {k: p for k, p in pairs.items() if len(p) == 2 and p[8]["measured"] < p[4]["measured"]}
    by_hw = {hw: {"groups_measured_tp8_below_tp4": sum(k[0] == hw for k in shown),
                  "reproduced": sum(k[0] == hw and p[8]["predicted"] < p[4]["predicted"] for k, p in shown.items()),
                  "groups_with_tp4_and_tp8": sum(k[0] == hw and len(p) == 2 for k, p in pairs.items())}
             for hw in PCIE_HARDWARE}
    return {"groups_measured_tp8_below_tp4": len(shown),
            "reproduced": sum(p[8]["predicted"] < p[4]["predicted"] for p in shown.values()),
            "pcie_tp8_below_tp4_by_hardware": by_hw}


def plot(gpu: list[dict], pub: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, rows, title, unit in ((axes[0], gpu, "H100 GPU compute per step (ms)", 1 / MS),
                                  (axes[1], pub, "TensorRT-LLM max throughput (tok/s)", 1)):
        kinds = sorted({r["hardware"] for r in rows})
        for kind in kinds:
            xs = [r["measured"] * unit for r in rows if r["hardware"] == kind]
            ys = [r["predicted"] * unit for r in rows if r["hardware"] == kind]
            ax.scatter(xs, ys, s=10, label=kind, alpha=0.7)
        lo = min(min(r["measured"], r["predicted"]) for r in rows) * unit
        hi = max(max(r["measured"], r["predicted"]) for r in rows) * unit
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set(xscale="log", yscale="log", xlabel="measured", ylabel="predicted by tpplan", title=title)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> int:
    gpu = gpu_rows()
    pub, beyond, max_util, excluded = published_sets()
    vllm, vllm_excluded = vllm_rows()
    excluded += vllm_excluded
    fp4 = [r for r in pub if r["precision"] == "FP4"]
    dense_fp = [r for r in pub if r["precision"] != "FP4"]  # the non-FP4 rows (MoE included)
    report = {"gpu_compute": error_stats(gpu, "tp") | {"by_mode": error_stats(gpu, "mode")[
        "signed_median_pct_by_mode"]},
              "published": error_stats(pub, "tp") | {"by_hardware": error_stats(pub, "hardware")[
                  "signed_median_pct_by_hardware"]} | order_agreement(pub) | pcie_tp8_below_tp4(pub),
              "published_by_model": error_stats(pub, "model")["signed_median_pct_by_model"],
              "published_by_release": error_stats(pub, "engine_version")["signed_median_pct_by_engine_version"],
              "published_by_precision": error_stats(pub, "precision")["signed_median_pct_by_precision"],
              "published_without_fp4": {k: v for k, v in error_stats(dense_fp, "tp").items()
                                        if k != "signed_median_pct_by_tp"} | order_agreement(dense_fp)
              | {"order_by_release": {rel: order_agreement([r for r in dense_fp if r["engine_version"] == rel])
                                      for rel in sorted({r["engine_version"] for r in dense_fp})},
                 "by_runtime": {rt: {k: v for k, v in error_stats([r for r in dense_fp if r["runtime"] == rt],
                                                                    "tp").items() if k != "worst_error_pct"}
                                    | order_agreement([r for r in dense_fp if r["runtime"] == rt]) for rt in RUNTIMES},
                 "misorders_by_separation": misorders_by_separation(dense_fp),
                 "measured_order_across_releases": measured_order_across_releases(dense_fp),
                 "release_agnostic_ceiling": release_agnostic_ceiling(dense_fp)},
              "fp4_rows": (error_stats(fp4, "tp") | {"by_hardware": error_stats(fp4, "hardware")[
                  "signed_median_pct_by_hardware"]} | order_agreement(fp4)) if fp4 else {"rows": 0},
              "vllm_rows": error_stats(vllm, "tp") | {"by_hardware": error_stats(vllm, "hardware")[
                  "signed_median_pct_by_hardware"], "by_model": error_stats(vllm, "model")[
                  "signed_median_pct_by_model"]} | order_agreement(vllm),
              "beyond_context_rows": ((error_stats(beyond, "model") | order_agreement(beyond)) if beyond
                                      else {"rows": 0}),
              "max_utilization_rows": ((error_stats(max_util, "tp") | order_agreement(max_util)) if max_util
                                       else {"rows": 0}),
              "moe_rows": _moe_report(pub),
              "pipeline_rows": {"kept": sum(r["pp"] > 1 for r in pub),
                                **error_stats([r for r in pub if r["pp"] > 1], "pp"),
                                "excluded": dict(Counter(re.sub(r":.*", "", e["reason"]) for e in excluded
                                                         if e["pp"] > 1))},
              "excluded_rows": len(excluded),
              "excluded_by_reason": dict(Counter(re.sub(r":.*", "", e["reason"]) for e in excluded).most_common())}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fidelity.json").write_text(json.dumps(report, indent=1) + "\n")
    with open(RESULTS / "excluded.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(excluded[0]))
        writer.writeheader()
        writer.writerows(excluded)
    plot(gpu, pub, DOCS / "fidelity.png")
    from summary import summary_markdown, update_readme  # benchmarks/summary.py, beside this file

    if not update_readme(ROOT.parent / "README.md", summary_markdown(
            gpu, pub, vllm, order_agreement, pcie_tp8_below_tp4(pub),
            report["published_without_fp4"].get("measured_order_across_releases"), beyond, RUNTIMES,
            max_util, report["published_without_fp4"]["release_agnostic_ceiling"])):
        print("README.md has no fidelity-summary markers: its Accuracy table was not updated", file=sys.stderr)
    json.dump(report, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
