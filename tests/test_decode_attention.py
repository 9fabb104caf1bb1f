"""The serving engines' decode attention: a fused paged kernel at efficiency.attention_decode_memory_fused of HBM
bandwidth (the measurement harness's unfused PyTorch attention keeps attention_decode_memory), plus
efficiency.decode_sequence_overhead per running sequence per decoder layer, which TP does not shrink."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from tpplan.cost.coefficients import coefficients
from tpplan.cost.kernels import FUSIONS, kernel_rates
from tpplan.cost.step import decode_step
from tpplan.hardware.loader import load_builtin, load_profile_text
from tpplan.hardware.writer import profile_to_yaml
from tpplan.models.resolve import resolve_model
from tpplan.units import US

ROOT = Path(__file__).resolve().parents[1]


def _with(profile, **efficiency):
    return dataclasses.replace(profile, efficiency=dataclasses.replace(profile.efficiency, **efficiency))


def test_engines_read_the_cache_at_the_fused_share_and_the_harness_at_its_own():
    h100 = load_builtin("dgx-h100")
    bw = h100.gpu.memory_bandwidth_bytes_per_s
    e = h100.efficiency
    assert (e.attention_decode_memory, e.attention_decode_memory_fused) == (0.65, 0.78)
    assert kernel_rates(h100, "bf16", fused_attention=True).attention_decode_bytes_per_s == pytest.approx(0.78 * bw)
    assert kernel_rates(h100, "bf16").attention_decode_bytes_per_s == pytest.approx(0.65 * bw)
    spec = resolve_model("llama-8b").spec
    for engine in ("vllm", "sglang", "trtllm"):
        assert coefficients(spec, h100, tp=1, engine=engine).rates.attention_decode_bytes_per_s == pytest.approx(
            0.78 * bw)
    harness = coefficients(spec, h100, tp=1, fusion=FUSIONS["torch"], sustained=False)
    assert harness.rates.attention_decode_bytes_per_s == pytest.approx(0.65 * bw)
    # a profile without a fused share reads at its attention_decode_memory everywhere
    plain = _with(h100, attention_decode_memory_fused=None)
    assert coefficients(spec, plain, tp=1).rates.attention_decode_bytes_per_s == pytest.approx(0.65 * bw)


@pytest.mark.parametrize("tp", [1, 2, 8])
def test_each_running_sequence_costs_the_overhead_once_per_layer_at_any_tp(tp):
    h100 = load_builtin("dgx-h100")
    spec = resolve_model("llama-70b").spec
    assert h100.efficiency.decode_sequence_overhead_s == pytest.approx(0.1 * US)
    none = _with(h100, decode_sequence_overhead_s=0.0)
    batch, context = 256, 1024
    with_it = decode_step(coefficients(spec, h100, tp=tp), h100, batch=batch, context_len=context)
    without = decode_step(coefficients(spec, none, tp=tp), none, batch=batch, context_len=context)
    assert with_it.compute_s - without.compute_s == pytest.approx(batch * spec.num_hidden_layers * 0.1 * US, rel=1e-9)
    assert with_it.communication_s == without.communication_s


def test_the_decode_constants_round_trip_through_a_written_profile_and_a_users_file(tmp_path):
    h100 = _with(load_builtin("dgx-h100"), attention_decode_memory_fused=0.81, decode_sequence_overhead_s=0.25 * US)
    again = load_profile_text(profile_to_yaml(h100), origin="test")
    assert again.efficiency.attention_decode_memory_fused == pytest.approx(0.81)
    assert again.efficiency.decode_sequence_overhead_s == pytest.approx(0.25 * US)
    d = yaml.safe_load((ROOT / "hardware_profiles/dgx-h100.yaml").read_text())
    d["efficiency"] |= {"attention_decode_memory_fused": 0.7, "decode_sequence_overhead": "150 ns"}
    mine = load_profile_text(yaml.safe_dump(d, sort_keys=False), origin="mine.yaml")
    assert mine.efficiency.attention_decode_memory_fused == pytest.approx(0.7)
    assert mine.efficiency.decode_sequence_overhead_s == pytest.approx(0.15 * US)
    assert "decode_sequence_overhead" not in mine.defaulted.get("kernels", ())


def test_a_fused_share_above_one_is_refused_in_one_line(refusal, edited_profile):
    path, line = edited_profile("over", attention_decode_memory_fused=1.4)
    assert refusal("recommend", "-m", "llama-70b", "--hardware", str(path)) == (
        f"Error: {path}:{line}: efficiency.attention_decode_memory_fused: invalid value (got 1.4); expected less than "
        f"or equal to 1")


def test_a_profile_stating_only_the_harness_share_prices_the_engines_with_it(tmp_path):
    """A user's attention_decode_memory without attention_decode_memory_fused keeps pricing the engines' decode
    attention (as before the fused share existed) and is not credited to the defaults file."""
    d = yaml.safe_load((ROOT / "hardware_profiles/dgx-h100.yaml").read_text())
    d["efficiency"].pop("attention_decode_memory_fused")
    d["efficiency"]["attention_decode_memory"] = 0.4
    mine = load_profile_text(yaml.safe_dump(d, sort_keys=False), origin="mine.yaml")
    assert mine.efficiency.attention_decode_memory_fused is None
    assert "attention_decode_memory_fused" not in mine.defaulted.get("kernels", ())
    c = coefficients(resolve_model("llama-8b").spec, mine, tp=1, engine="trtllm")
    assert c.rates.attention_decode_bytes_per_s == pytest.approx(0.4 * mine.gpu.memory_bandwidth_bytes_per_s)
    again = load_profile_text(profile_to_yaml(mine), origin="again")
    assert again.efficiency.attention_decode_memory_fused is None


def test_the_harness_and_linear_attention_layers_pay_no_per_sequence_time():
    h100 = load_builtin("dgx-h100")
    none = _with(h100, decode_sequence_overhead_s=0.0)
    spec = resolve_model("llama-8b").spec
    harness = {p.name: decode_step(coefficients(spec, p, tp=1, fusion=FUSIONS["torch"], sustained=False), p,
                                   batch=64, context_len=1024) for p in (h100, none)}
    assert harness[h100.name].total_s == harness[none.name].total_s
    hybrid = resolve_model("qwen3-next-80b").spec
    c, c0 = coefficients(hybrid, h100, tp=4), coefficients(hybrid, none, tp=4)
    assert 0 < c.linear_layers < c.num_layers
    extra = decode_step(c, h100, batch=32, context_len=1024).compute_s \
        - decode_step(c0, none, batch=32, context_len=1024).compute_s
    assert extra == pytest.approx(32 * (c.num_layers - c.linear_layers) * 0.1 * US, rel=1e-9)


def test_calibration_fits_the_fused_share_with_the_per_sequence_time_taken_out():
    """A synthetic GPU whose decode attention streams KV at 2.4 TB/s plus 0.1 us per sequence per call, 5 us per
    call: the fused share is 2.4 TB/s over HBM bandwidth exactly; the harness's own share holds the per-sequence
    time and comes out lower."""
    from tpplan.hardware.kernel_table import AttentionCurve, KernelTable
    from tpplan.measure.calibrate import fit_attention

    base = load_builtin("dgx-h100")
    fixed_s, kv_heads, d, batch, per_seq = 5e-6, 8, 128, 64, base.efficiency.decode_sequence_overhead_s
    contexts = (256, 1152, 4096)
    decode = tuple(fixed_s + batch * per_seq + 2 * batch * kv_heads * n * d * 2 / 2.4e12 for n in contexts)
    table = KernelTable(source="test", attention=(
        AttentionCurve(mode="decode", heads=32, kv_heads=kv_heads, head_dim=d, batch=batch, dtype="bf16",
                       lengths=contexts, time_s=decode),))
    fitted, notes = fit_attention(base, table, fixed_s=fixed_s)
    bw = base.gpu.memory_bandwidth_bytes_per_s
    assert fitted.efficiency.attention_decode_memory_fused == pytest.approx(2.4e12 / bw, rel=1e-9)
    assert fitted.efficiency.attention_decode_memory < fitted.efficiency.attention_decode_memory_fused
    assert notes == []


def test_both_decode_shares_come_from_the_same_calls_and_a_short_table_keeps_the_profiles():
    """Calls no longer than their fixed and per-sequence time are left out of both fits alike; when every call is
    that short the fused share stays the profile's and a note says so."""
    from tpplan.hardware.kernel_table import AttentionCurve, KernelTable
    from tpplan.measure.calibrate import fit_attention

    base = load_builtin("dgx-h100")
    fixed_s, batch = 5e-6, 1
    kv = 2 * batch * 8 * 128 * 2  # bytes per token of context
    contexts = (256, 1152, 4096, 16384)
    extra = (0.08e-6, 0.09e-6, 0.5e-6 + kv * 4096 / 2.4e12, 40e-6)
    table = KernelTable(source="test", attention=(
        AttentionCurve(mode="decode", heads=32, kv_heads=8, head_dim=128, batch=batch, dtype="bf16",
                       lengths=contexts, time_s=tuple(fixed_s + x for x in extra)),))
    fitted, _ = fit_attention(base, table, fixed_s=fixed_s)
    e = fitted.efficiency
    assert e.attention_decode_memory_fused >= e.attention_decode_memory
    short = KernelTable(source="test", attention=(
        AttentionCurve(mode="decode", heads=32, kv_heads=8, head_dim=128, batch=batch, dtype="bf16",
                       lengths=(256, 512), time_s=(fixed_s + 0.05e-6, fixed_s + 0.06e-6)),))
    kept, notes = fit_attention(base, short, fixed_s=fixed_s)
    assert kept.efficiency.attention_decode_memory_fused == base.efficiency.attention_decode_memory_fused == 0.78
    assert notes == ["no decode-attention call ran longer than its fixed and per-sequence time; "
                     "attention_decode_memory_fused kept at the profile's 0.78"]


def test_the_harness_share_is_not_credited_as_a_default_in_use_when_the_engines_have_a_fused_one(run_cli):
    a = run_cli("recommend", "-m", "llama-70b", "--hardware", "dgx-a100-80g", "-f", "json").json()["assumptions"]
    assert "attention_decode_memory_fused 0.78" in a["efficiency_defaults"]
    assert "attention_decode_memory 0.65" not in a["efficiency_defaults"]
