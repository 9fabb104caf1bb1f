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


def test_a_fused_share_above_one_is_refused_in_one_line(refusal, tmp_path):
    d = yaml.safe_load((ROOT / "hardware_profiles/dgx-h100.yaml").read_text())
    d["name"], d["efficiency"]["attention_decode_memory_fused"] = "over", 1.4
    path = tmp_path / "over.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "attention_decode_memory_fused" in t)
    out = refusal("recommend", "-m", "llama-70b", "--hardware", str(path))
    assert out.startswith(f"Error: {path}:{line}: efficiency.attention_decode_memory_fused: ")
    assert "\n" not in out
