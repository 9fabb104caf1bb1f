"""`--all2all-backend` (alias `--moe-a2a-backend`): the MoE token movement the user runs, not only the engine's
default (issue 14, part 3). Values: vLLM All2AllBackend (vllm/config/parallel.py), SGLang MOE_A2A_BACKEND_CHOICES
(python/sglang/srt/server_args.py); sources in tpplan/models/moe_backends.py."""

from __future__ import annotations

import dataclasses

import pytest

from tpplan.cost.coefficients import coefficients
from tpplan.cost.collectives import collective_time_s
from tpplan.cost.moe import dispatch_bytes_per_gpu, gathers_tokens, moe_comm_time_s
from tpplan.errors import TpplanError
from tpplan.hardware.loader import load_builtin
from tpplan.models.dtypes import resolve_dtype
from tpplan.models.moe_backends import ALL2ALL_BACKENDS, a2a_mode, token_movement
from tpplan.models.resolve import resolve_model
from tpplan.planner.plan import recommend

DS = dict(hardware="hgx-h200", gpus=8)


def _dep8(plan):
    return next(c for c in plan.candidates if (c.tp, c.pp, c.dp_attention, c.ep) == (1, 1, 8, 8))


def test_deepep_low_latency_prices_vllm_dep8_with_the_low_latency_kernels():
    """DeepSeek-V3 on 8 H200, vLLM DP8 + EP8, 512 sequences (64 per DP rank): under deepep_low_latency each of the
    58 MoE layers dispatches and combines with DeepEP's low-latency kernels (tpplan.cost.deepep), instead of the
    default all-gather + reduce-scatter of all 512 tokens. One NVLink domain: no RDMA; the busiest GPU receives
    64 x 1.2 tokens x 8 copies, 7 of 8 from other GPUs, FP8 (7,408-byte messages) out and BF16 (14,336) back, at
    0.68 x 450 GB/s, plus one 13 us call each way (64 tokens fit one 256-token chunk)."""
    spec, hgx = resolve_model("deepseek-v3").spec, load_builtin("hgx-h200")
    fp8 = resolve_dtype(spec, "auto")  # the checkpoint's FP8 blocks: the experts compute in FP8, so is the dispatch
    default = coefficients(spec, hgx, tp=1, ep=8, dp_attention=8, engine="vllm", moe_imbalance=1.2, dtype=fp8).moe
    forced = coefficients(spec, hgx, tp=1, ep=8, dp_attention=8, engine="vllm", moe_imbalance=1.2, dtype=fp8,
                          moe_dispatch=token_movement("vllm", "deepep_low_latency"),
                          a2a_mode=a2a_mode("vllm", "deepep_low_latency")).moe
    assert default.gather_dispatch and not forced.gather_dispatch
    assert forced == dataclasses.replace(default, gather_dispatch=False, a2a_mode="low_latency")  # nothing else
    copies_out = 64 * 1.2 * 8 * 7 / 8
    per_layer = 2 * 13e-6 + copies_out * (7408 + 14336) / (0.68 * 450e9)
    assert moe_comm_time_s(forced, hgx, 64) == pytest.approx(per_layer)

    auto = _dep8(recommend("deepseek-v3", engine="vllm", batch=512, **DS))
    ll = _dep8(recommend("deepseek-v3", engine="vllm", batch=512, all2all_backend="deepep_low_latency", **DS))
    assert ll.batch == auto.batch == 512
    assert ll.decode_step.communication_s == pytest.approx(58 * per_layer)  # attention TP 1: no TP all-reduce
    assert auto.decode_step.communication_s == pytest.approx(58 * moe_comm_time_s(default, hgx, 64))
    assert ll.decode_step.communication_s < auto.decode_step.communication_s
    assert ll.tpot_s < auto.tpot_s
    assert (ll.moe_token_movement_decode, ll.moe_token_movement_prefill) == ("low_latency", "low_latency")
    assert (auto.moe_token_movement_decode, auto.moe_token_movement_prefill) == ("gather", "gather")


def test_other_all_to_all_backends_keep_the_fabric_protocols():
    """pplx (and every non-DeepEP all-to-all) is priced as before: the per-rank deduplicated buffer over the fabric's
    NCCL protocols."""
    spec, hgx = resolve_model("deepseek-v3").spec, load_builtin("hgx-h200")
    pplx = coefficients(spec, hgx, tp=1, ep=8, dp_attention=8, engine="vllm", moe_imbalance=1.2,
                        moe_dispatch=token_movement("vllm", "pplx"), a2a_mode=a2a_mode("vllm", "pplx")).moe
    assert pplx.a2a_mode == "fabric"
    n_bytes = dispatch_bytes_per_gpu(pplx, 64)
    assert n_bytes == pytest.approx(64 * 8 * (1 - (7 / 8) ** 8) * 7168 * 2 * 1.2)
    per_layer = 2 * collective_time_s(hgx, kind="alltoall", group_size=8, n_bytes=n_bytes)
    assert moe_comm_time_s(pplx, hgx, 64) == pytest.approx(per_layer)


def test_forced_backend_overrides_every_engine_default_and_auto_keeps_it():
    for engine in ("vllm", "sglang", "trtllm", "megatron"):
        default = gathers_tokens(engine=engine, ep=16, experts_per_token=1, nvlink_domain_gpus=72)
        assert gathers_tokens(engine=engine, ep=16, experts_per_token=1, nvlink_domain_gpus=72, forced=None) == default
        assert gathers_tokens(engine=engine, ep=16, experts_per_token=1, nvlink_domain_gpus=72, forced="gather")
        assert not gathers_tokens(engine=engine, ep=16, experts_per_token=1, nvlink_domain_gpus=72, forced="all2all")
    assert {token_movement("vllm", b) for b in ALL2ALL_BACKENDS["vllm"]} == {"gather", "all2all"}
    assert token_movement("vllm", "allgather_reducescatter") == token_movement("sglang", "none") == "gather"
    assert token_movement("sglang", "deepep") == token_movement("vllm", "flashinfer_all2allv") == "all2all"
    assert token_movement("trtllm", "auto") is None


def test_backend_changes_ep_layouts_only():
    """A DP-attention layout without EP gathers whatever the backend (vLLM runs its all-to-all kernels only under
    EP: use_all2all_kernels = dp_size > 1 and use_ep); TP-only layouts have no token movement at all."""
    auto = recommend("deepseek-v3", engine="sglang", batch=256, **DS)
    deepep = recommend("deepseek-v3", engine="sglang", batch=256, all2all_backend="deepep", **DS)
    none = recommend("deepseek-v3", engine="sglang", batch=256, all2all_backend="none", **DS)
    before = {(c.tp, c.pp, c.dp_attention, c.ep): c for c in auto.candidates if c.feasible}
    changed = 0
    for c in deepep.candidates:
        if not c.feasible:
            continue
        b = before[(c.tp, c.pp, c.dp_attention, c.ep)]
        if c.ep > 1 and c.dp_attention > 1:
            changed += c.tpot_s != b.tpot_s
        else:
            assert c.tpot_s == b.tpot_s
    assert changed > 0
    assert [c.tpot_s for c in none.candidates] == [c.tpot_s for c in auto.candidates]  # 'none' is SGLang's default


def test_wrong_value_is_one_error_line_naming_the_engines_values(refusal):
    """The values depend on --engine, so a wrong one is refused with it: exit 1, one line (tpplan.cli's rule)."""
    base = ("recommend", "-m", "deepseek-v3", "--hardware", "hgx-h200", "--gpus", "8")
    err = refusal(*base, "--engine", "sglang", "--all2all-backend", "deepep_low_latency")
    assert err == ("Error: --all2all-backend 'deepep_low_latency' is not a sglang backend (deepep_low_latency is "
                   "vllm's spelling); choose one of: auto, none, deepep, mooncake, mori, nixl, flashinfer")
    err = refusal(*base, "--moe-a2a-backend", "deepep")  # vLLM by default: SGLang's spelling is refused
    assert ("'deepep' is not a vllm backend (deepep is sglang's spelling); choose one of: auto, "
            "allgather_reducescatter, ") in err
    err = refusal(*base, "--engine", "trtllm", "--all2all-backend", "deepep_low_latency")
    assert "applies to --engine vllm and sglang only; TensorRT-LLM chooses" in err
    err = refusal("sweep", "--models", "deepseek-v3", "--hardware", "hgx-h200", "--engine", "sglang",
                  "--all2all-backend", "pplx")
    assert "'pplx' is not a sglang backend (pplx is vllm's spelling)" in err
    with pytest.raises(TpplanError, match=r"^--all2all-backend 'mooncake' is not a vllm backend \(mooncake is "
                                          r"sglang's spelling\); choose one of: auto, "):
        recommend("deepseek-v3", all2all_backend="mooncake", **DS)


def test_emit_prints_the_backend_the_plan_used(run_cli):
    base = ("recommend", "-m", "deepseek-v3", "--hardware", "hgx-h200", "--gpus", "8", "--tp", "1",
            "--dp-attention", "8", "--ep", "8", "-f", "json")
    out = run_cli(*base, "--emit", "vllm", "--all2all-backend", "deepep_low_latency").json()
    assert "--enable-expert-parallel" in out["serve_command"]
    assert "--all2all-backend deepep_low_latency" in out["serve_command"]
    assert "allgather_reducescatter" not in out["serve_command"]
    assert out["inputs"]["all2all_backend"] == "deepep_low_latency"
    assert "token movement --all2all-backend deepep_low_latency" in out["assumptions"]["moe"]
    out = run_cli(*base, "--emit", "sglang", "--moe-a2a-backend", "deepep").json()
    assert "--moe-a2a-backend deepep" in out["serve_command"] and "--ep-size 8" in out["serve_command"]
    assert out["inputs"]["all2all_backend"] == "deepep"
    # defaults: vLLM names its default so a changed default cannot move the plan; SGLang's 'none' stays unset
    out = run_cli(*base, "--emit", "vllm").json()
    assert "--all2all-backend allgather_reducescatter" in out["serve_command"]
    assert out["inputs"]["all2all_backend"] == "auto" and "token movement" not in out["assumptions"]["moe"]
    for given in ("auto", "none"):
        assert "--moe-a2a-backend" not in run_cli(*base, "--emit", "sglang", "--moe-a2a-backend", given).json()[
            "serve_command"]
    # DP attention without EP gathers whatever the backend: the command says what was priced
    dp8 = [a if i != base.index("--ep") + 1 else "1" for i, a in enumerate(base)]  # --ep 1
    out = run_cli(*dp8, "--emit", "vllm", "--all2all-backend", "deepep_low_latency").json()
    assert "--all2all-backend allgather_reducescatter" in out["serve_command"]


def test_sweep_and_compare_take_the_backend(run_cli):
    from tpplan.planner.sweep import sweep

    kw = dict(models=["deepseek-v3"], hardware=["hgx-h200"], gpus=[8], batches=[512], input_lens=[1024],
              output_lens=[256], engine="vllm")
    auto, _ = sweep(**kw)
    ll, _ = sweep(**kw, all2all_backend="deepep_low_latency")
    row = (auto.tp == 1) & (auto.pp == 1) & (auto.dp_attention == 8) & (auto.ep == 8)
    planned = _dep8(recommend("deepseek-v3", engine="vllm", batch=512, all2all_backend="deepep_low_latency", **DS))
    assert float(ll[row].tpot_s.iloc[0]) == pytest.approx(planned.tpot_s)
    assert float(ll[row].tpot_s.iloc[0]) < float(auto[row].tpot_s.iloc[0])
    out = run_cli("compare", "8", "1x2", "-m", "deepseek-v3", "--hardware", "hgx-h200", "--engine", "sglang",
                  "--moe-a2a-backend", "deepep", "-f", "json").json()
    assert out["inputs"]["all2all_backend"] == "deepep"


def test_compare_takes_num_requests_and_shows_job_seconds(run_cli):
    out = run_cli("compare", "8", "4x1x2", "-m", "llama-70b", "--gpus", "8", "--num-requests", "1000",
                  "-f", "json").json()
    assert out["inputs"]["num_requests"] == 1000
    for c in out["layouts"]:
        assert c["job_s"] == pytest.approx(1000 * 256 / c["output_tokens_per_s"])
    table = run_cli("compare", "8", "4x1x2", "-m", "llama-70b", "--gpus", "8", "--num-requests", "1000").out
    assert "job s" in table
    assert "job s" not in run_cli("compare", "8", "4x1x2", "-m", "llama-70b", "--gpus", "8").out


A2A_CHOICES = ("choose auto (the engine's default) or --all2all-backend (vllm): allgather_reducescatter, "
               "deepep_high_throughput, deepep_low_latency, deepep_v2, pplx, mori, mori_high_throughput, "
               "mori_low_latency, nixl_ep, flashinfer_all2allv, flashinfer_nvlink_two_sided, "
               "flashinfer_nvlink_one_sided; --moe-a2a-backend (sglang): none, deepep, mooncake, mori, nixl, "
               "flashinfer")


def test_a_value_of_no_engine_is_a_usage_error_listing_the_choices(usage_error):
    """A value no engine has is wrong alone, whatever --engine: exit 2 at parse time, one Error line with every
    engine's values, under either option name and in every command that takes it."""
    line = f"Error: Invalid value for '--all2all-backend' / '--moe-a2a-backend': 'foo' is no engine's MoE all-to-all " \
           f"backend; {A2A_CHOICES}\n"
    for args in (("recommend", "-m", "deepseek-v3", "--all2all-backend", "foo"),
                 ("recommend", "-m", "deepseek-v3", "--engine", "sglang", "--moe-a2a-backend", "foo"),
                 ("compare", "-m", "deepseek-v3", "8", "1+dp8+ep8", "--all2all-backend", "foo"),
                 ("sweep", "--models", "deepseek-v3", "--all2all-backend", "foo")):
        err = usage_error(*args)
        assert err.endswith(line), err
        assert [ln for ln in err.splitlines() if ln.startswith("Error:")] == [line.rstrip("\n")]


def test_sglang_forced_backend_on_ep_without_dp_attention_is_refused_not_dropped(run_cli):
    """SGLang runs --moe-a2a-backend deepep --tp 8 --ep 8 (docs: expert_parallelism.md), but tpplan prices an
    all-to-all backend only under DP attention; the fixed layout is one error line with the fixes, never a plan
    priced as an all-reduce whose command leaves the user's backend out."""
    r = run_cli("recommend", "-m", "deepseek-v3", "--hardware", "hgx-h200", "--engine", "sglang", "--moe-a2a-backend",
                "deepep", "--tp", "8", "--ep", "8", "--emit", "sglang")
    assert r.code == 1
    assert r.err.strip() == (
        "Error: --moe-a2a-backend deepep with --tp 8 --ep 8 and no --dp-attention: SGLang runs it (each layer's tokens "
        "reduce-scattered over the TP group, moved by deepep, gathered back for attention), but tpplan prices an "
        "all-to-all backend only with DP attention, and would print a command without yours; use --tp 1 "
        "--dp-attention 8 --ep 8, or leave --moe-a2a-backend out")
    ok = run_cli("recommend", "-m", "deepseek-v3", "--hardware", "hgx-h200", "--engine", "sglang", "--moe-a2a-backend",
                 "deepep", "--tp", "1", "--dp-attention", "8", "--ep", "8", "--emit", "sglang", "-f", "json")
    assert ok.code == 0 and "--moe-a2a-backend deepep" in ok.json()["serve_command"]


def test_the_all2all_backend_is_taken_in_any_case(run_cli):
    """As every choice: DEEPEP and Auto are SGLang's deepep and the default."""
    base = ("recommend", "-m", "deepseek-v3", "--hardware", "hgx-h200", "--engine", "sglang", "--tp", "1",
            "--dp-attention", "8", "--ep", "8", "-f", "json")
    upper = run_cli(*base, "--moe-a2a-backend", "DEEPEP")
    assert upper.code == 0, upper.err
    assert upper.json()["inputs"]["all2all_backend"] == "deepep"
    assert run_cli(*base, "--moe-a2a-backend", "Auto").json()["inputs"]["all2all_backend"] == "auto"
