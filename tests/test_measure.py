"""`tpplan measure` and the kernels: three tiers (STYLE.md): a fake process group for shapes and collective
counts at any world size; real gloo ranks for numerics; one end-to-end run. Timing assertions stay loose."""

from __future__ import annotations

import glob
import json
import os
import re
import tempfile

import pytest

torch = pytest.importorskip("torch")

from tpplan.kernels import tp_layer  # noqa: E402

from tpplan.errors import MeasurementError  # noqa: E402
from tpplan.measure import launch as launch_mod  # noqa: E402

ROOT_DIR = __import__("pathlib").Path(__file__).resolve().parents[1]
SHAPE = tp_layer.Shape(hidden=256, heads=16, kv_heads=4, head_dim=16, intermediate=512)


def test_fake_process_group_shard_shapes_and_collective_counts():
    import torch.distributed as dist
    from torch.testing._internal.distributed.fake_pg import FakeStore

    full = tp_layer.full_weights(SHAPE, seed=0, dtype=torch.float32, device=torch.device("cpu"))
    for tp in range(2, 9):
        if SHAPE.heads % tp or SHAPE.intermediate % tp or (SHAPE.kv_heads % tp and tp % SHAPE.kv_heads):
            continue
        dist.init_process_group("fake", store=FakeStore(), rank=tp - 1, world_size=tp)
        try:
            w = tp_layer.shard(full, SHAPE, rank=tp - 1, tp=tp)
            kv_local = max(1, SHAPE.kv_heads // tp)
            assert w["q"].shape == (SHAPE.heads // tp * 16, 256)
            assert w["k"].shape == w["v"].shape == (kv_local * 16, 256)  # replicated single head when tp > kv
            assert w["o"].shape == (256, SHAPE.heads // tp * 16)
            assert w["gate"].shape == w["up"].shape == (512 // tp, 256) and w["down"].shape == (256, 512 // tp)
            calls = []

            def counting_allreduce(t, calls=calls):
                calls.append(tuple(t.shape))
                dist.all_reduce(t)

            x = torch.randn(8, 256)
            out = tp_layer.forward(w, x, SHAPE, allreduce=counting_allreduce, batch=8,
                                   cache=tp_layer.local_cache(tp_layer.make_cache(
                                       SHAPE, batch=8, context=4, seed=0, dtype=torch.float32,
                                       device=torch.device("cpu")), SHAPE, rank=tp - 1, tp=tp))
            assert out.shape == (8, 256)
            assert calls == [(8, 256), (8, 256)]  # one after o, one after down (Megatron: 2 per layer)
        finally:
            dist.destroy_process_group()


def test_kv_replication_rule_matches_vllm():
    assert [tp_layer.kv_heads_for_rank(SHAPE, r, 8) for r in range(8)] == [range(h, h + 1) for h in
                                                                          (0, 0, 1, 1, 2, 2, 3, 3)]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_two_gloo_ranks_sharded_layer_equals_unsharded_and_collectives_exact():
    layer = launch_mod.launch("tp_layer", ["--hidden", "256", "--heads", "16", "--kv-heads", "4", "--head-dim", "16",
                                           "--intermediate", "512", "--dtype", "fp32", "--tolerance", "1e-5",
                                           "--decode-batch", "1,4", "--prefill-tokens", "32", "--iters", "2",
                                           "--warmup", "1", "--repeats", "1", "--layers", "2", "--backend", "gloo"],
                              nproc=2, timeout_s=60)
    assert len(layer["checks"]) == 3 and all(c["passed"] for c in layer["checks"])
    assert max(c["max_abs_error"] for c in layer["checks"]) < 1e-4  # FACTS.md §8: 7.6e-6 in fp32
    coll = launch_mod.launch("collectives", ["--min-bytes", "1024", "--max-bytes", "65536", "--factor", "8",
                                             "--iters", "3", "--warmup", "1", "--dtype", "bf16", "--backend", "gloo"],
                             nproc=2,
                             timeout_s=60)
    assert {i["kind"] for i in coll["items"]} == {"allreduce", "allgather", "reducescatter"}
    assert all(i["correct"] for i in coll["items"])
    for i in coll["items"]:
        factor = 1.0 if i["kind"] == "allreduce" else 0.5  # nccl-tests: 2(n-1)/n and (n-1)/n at n = 2
        assert i["busbw_bytes_per_s"] == pytest.approx(i["algbw_bytes_per_s"] * factor)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    from tpplan.cli import main

    d = tmp_path_factory.mktemp("measure")
    out, raw = d / "cal.yaml", d / "raw.json"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["measure", "--quick", "--nproc", "2", "--backend", "gloo", "--hardware", "cpu-gloo", "--out",
                     str(out), "--save-raw", str(raw), "--format", "json"])
    return code, json.loads(buf.getvalue()), out, raw


def _children_running_kernels() -> list[int]:
    """PIDs of this process's children that run a tpplan kernel (from /proc; Linux)."""
    me, out = os.getpid(), []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = open(stat).read().rsplit(")", 1)[1].split()
            cmd = open(stat.replace("stat", "cmdline"), "rb").read()
        except OSError:
            continue
        if int(fields[1]) == me and b"tpplan.kernels" in cmd:
            out.append(int(stat.split("/")[2]))
    return out


def _measure_temp_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "tpplan-measure-*")))


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_measure_quick_json_contract(quick_run):
    code, d, out, _ = quick_run
    assert code == 0
    assert {"environment", "items", "summary"} <= set(d)
    env = d["environment"]
    assert env["backend"] == "gloo" and env["world_size"] == 2 and env["torch"].startswith("2.")
    kinds = {i["kind"] for i in d["items"]}
    assert {"allreduce", "matmul", "layer", "memory"} <= kinds
    for i in d["items"]:
        unit = "bytes" if i["kind"] == "memory" else "s"
        assert i[f"measured_{unit}"] > 0 and i[f"predicted_{unit}"] > 0
        assert i["error_pct"] == pytest.approx(100 * (i[f"predicted_{unit}"] - i[f"measured_{unit}"])
                                               / i[f"measured_{unit}"])
        if unit == "s":  # CPU: every timed item says how: perf_counter around many calls, never one call alone
            assert i["timing"] in ("eager+perf_counter", "back_to_back+perf_counter",
                                   "eager+back_to_back+perf_counter")
        else:  # every item carries the key; a size says it was not timed and where the bytes came from
            assert i["timing"].startswith("not timed: bytes from ")
    assert not [i for i in d["items"] if i["kind"] == "allreduce" and i["tp"] == 1]  # engines run none at tp 1
    s = d["summary"]
    assert s["held_out_items"] > 0 and s["calibrated_profile"] == str(out)
    assert s["sign_convention"].startswith("error = (predicted - measured) / measured")
    assert s["kernel_table_held_out_error_pct"] is not None
    assert any("not NVLink" in n for n in d["notes"])
    # warm-up (4 KiB not slower than 16 KiB) is a timing property: the GPU test holds it; on the shared 2-core CI
    # machine gloo timings under load are noise (a clean run measured 0.93 ms vs 0.30 ms), so it is not asserted here


@pytest.mark.slow
def test_calibrated_profile_is_valid_and_recommend_accepts_it(quick_run, run_cli):
    _, d, out, _ = quick_run
    assert run_cli("profiles", "validate", str(out)).code == 0
    r = run_cli("recommend", "--model", "llama-8b", "--hardware", str(out), "--format", "json")
    assert r.code == 0 and r.json()["recommended"] is not None
    text = out.read_text()
    assert "tpplan measure on" in text and "kernel_table:" in text
    from tpplan.hardware.loader import load_profile_file

    table = load_profile_file(out).kernel_table
    assert table.layer_overhead_s == pytest.approx(d["summary"]["layer_overhead_s"], rel=1e-5)
    assert table.matmul and table.attention  # the kernel_table workload's curves, in seconds


@pytest.mark.slow
def test_calibrated_profile_credits_the_run_only_with_what_it_fitted(quick_run):
    """No collective tier or efficiency key the run did not fit is credited to it: cpu-gloo states only an nvlink
    tier, so the pcie tier stays derived (not written), and the efficiency source names the fitted keys; the fixed
    per-layer overhead never exceeds the shortest layer measured of its mode."""
    import yaml

    from tpplan.hardware.loader import load_builtin, load_profile_file

    _, d, out, _ = quick_run
    doc = yaml.safe_load(out.read_text())
    base = load_builtin("cpu-gloo")
    assert set(doc["collectives"]) == set(base.collectives) - set(base.defaulted.get("collectives", ()))
    assert "fitted tiers: nvlink" in doc["source"]["collectives"]
    fitted = doc["source"]["efficiency"].split("; fitted: ")[1].split(";")[0].split(", ")
    assert "matmul" in fitted and "moe_expert_fixed_tokens" not in fitted and "sustained_clock" not in fitted
    assert "moe_expert_fixed_tokens" not in doc["efficiency"]  # a default, read from defaults/kernels.yaml again
    assert doc["name"] == "cpu-gloo-calibrated"
    table = load_profile_file(out).kernel_table
    for mode in ("decode", "prefill"):
        shortest = min(i["measured_s"] for i in d["items"] if i["kind"] == "layer" and i["mode"] == mode)
        assert table.layer_overhead_s[mode] <= shortest


@pytest.mark.slow
def test_measure_refuses_to_overwrite(quick_run, run_cli):
    _, _, out, _ = quick_run
    r = run_cli("measure", "--quick", "--out", str(out))
    assert r.code == 1 and r.err == f"Error: {out} exists; pass --force to overwrite it, or choose another --out\n"


@pytest.mark.slow
def test_measure_from_saved_results_and_from_its_own_json(quick_run, run_cli, tmp_path):
    _, d, _, raw = quick_run
    r = run_cli("measure", "--from", str(raw), "--format", "json")
    assert r.code == 0 and len(r.json()["items"]) == len(d["items"])
    own = tmp_path / "measure.json"
    own.write_text(json.dumps(d))
    r2 = run_cli("measure", "--from", str(own), "--format", "json")
    assert r2.code == 0 and [i["measured_s"] for i in r2.json()["items"] if "measured_s" in i] == \
        [i["measured_s"] for i in d["items"] if "measured_s" in i]


def _schema_errors(run_cli, doc) -> list[str]:
    import jsonschema

    schema = run_cli("schema", "measure").json()
    return [f"{list(e.path)}: {e.message}" for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)]


@pytest.mark.slow
def test_real_measure_json_validates_against_tpplan_schema_measure(quick_run, run_cli):
    """What `tpplan measure -f json` writes on CPU (gloo, 2 ranks) passes `tpplan schema measure`: booleans
    (emulated, compute_only, correct, held_out), the timing string, the kernels' counts and the raw results."""
    _, d, _, _ = quick_run
    items = d["items"]
    assert any(isinstance(i.get("timing"), str) for i in items)
    assert any(i.get("emulated") is False and i.get("compute_only") is False for i in items)
    assert _schema_errors(run_cli, d) == []
    from tpplan.report.measure import ITEM_KEYS
    from tpplan.report.schemas import MEASURE_ITEM_TYPES

    assert set(ITEM_KEYS) <= set(MEASURE_ITEM_TYPES)  # every CSV column has a type in the schema
    bad = dict(d, items=[dict(items[0], emulated="no")])
    assert _schema_errors(run_cli, bad) == ["['items', 0, 'emulated']: 'no' is not of type 'boolean'"]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_emulated_measure_json_validates_against_its_schema(run_cli, tmp_path):
    """One rank timing rank 0's tp-2 shard (emulated, compute only: both true) writes JSON the schema accepts."""
    r = run_cli("measure", "--quick", "--nproc", "1", "--emulate-tp", "2", "--no-kernel-table", "--backend", "gloo",
                "--hardware", "cpu-gloo", "--format", "json")
    assert r.code == 0, r.err
    d = r.json()
    assert any(i.get("emulated") is True and i.get("compute_only") is True for i in d["items"])
    assert _schema_errors(run_cli, d) == []
    said = "tp 2 emulated on one rank (rank 0's shard, compute only): communication was not measured"
    assert any(n.startswith(said) for n in d["notes"])
    assert not any("loopback" in n for n in d["notes"])  # no collective ran: no word on what they describe
    raw = tmp_path / "em.json"
    raw.write_text(r.out)
    again = run_cli("measure", "--from", str(raw), "--format", "json")  # --from keeps the caveat
    assert again.code == 0, again.err
    assert any(n.startswith(said) for n in again.json()["notes"])
    other = run_cli("measure", "--from", str(raw), "--model", "llama-70b")
    assert other.code == 1 and other.err.startswith("Error: --model: the layer in the --from files is not "
                                                    "Llama-3.1-70B's (it had 32 heads, 8 KV heads")


@pytest.mark.slow
def test_cpu_run_never_calibrates_a_gpu_profile(quick_run, run_cli, tmp_path):
    _, _, _, raw = quick_run
    out = tmp_path / "h.yaml"
    for extra in ((), ("--force",)):
        r = run_cli("measure", "--from", str(raw), "--hardware", "dgx-h100", "--out", str(out), *extra)
        assert r.code == 1 and r.err.startswith("Error: --hardware dgx-h100 describes 'H100 SXM5 80GB' but this "
                                                "run measured a CPU") and not out.exists()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_dying_rank_is_named_and_leaves_no_process_folder_or_handle(run_cli, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # a private temp root: other runs cannot add folders
    dirs, fds = _measure_temp_dirs(), _open_fds()
    r = run_cli("measure", "--quick", "--nproc", "2", "--backend", "gloo", "--fail-rank", "1", "--skip-layer")
    assert r.code == 1
    last = r.err.strip().splitlines()[-1]
    assert last.startswith("Error: collectives: rank 1 exited with code 3: ") and last.endswith(
        "; rerun, and if it fails again run with --debug to see the end of the rank's stderr (out of memory, a faulty "
        "device or link: check dmesg, and nvidia-smi on a GPU node)")
    assert "failing on purpose" in last and r.err.count("Error:") == 1 and "Traceback" not in r.err
    assert _children_running_kernels() == []
    assert _measure_temp_dirs() == dirs and _open_fds() == fds


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_emulated_shard_runs_on_one_rank_compute_only():
    r = launch_mod.launch("tp_layer", ["--hidden", "256", "--heads", "16", "--kv-heads", "4", "--head-dim", "16",
                                       "--intermediate", "512", "--dtype", "fp32", "--decode-batch", "2",
                                       "--prefill-tokens", "16", "--iters", "1", "--repeats", "1", "--warmup", "0",
                                       "--layers", "2", "--emulate-tp", "8"], nproc=1, timeout_s=60)
    assert r["emulate_tp"] == 8 and r["checks"] == []
    assert {i["kind"] for i in r["items"]} == {"layer", "matmul", "memory"}  # no all-reduce in an emulated shard
    assert all(i["emulated"] and i["compute_only"] and i["tp"] == 8 for i in r["items"])
    qkv = next(i for i in r["items"] if i.get("name") == "qkv")
    assert (qkv["n"], qkv["k"]) == ((16 // 8 + 2 * 1) * 16, 256)  # 2 q heads + 1 replicated KV head (kv 4 < tp 8)
    layer = next(i for i in r["items"] if i["kind"] == "layer")
    assert layer["layers_timed"] == 2 and layer["timing"] == "eager+perf_counter"


@pytest.mark.parametrize(("args", "message"), [
    (("--tp", "2,x"), "Error: Invalid value for '--tp': '2,x': expected comma-separated whole numbers such as 2,4,8\n"),
    (("--emulate-tp", "0"), "Error: Invalid value for '--emulate-tp': '0': degrees must be at least 1, e.g. 1,2,4,8\n"),
    (("--backend", "mpi"), "Error: Invalid value for '--backend': 'mpi': expected one of gloo, nccl\n"),
    (("--dtype", "fp8"), "Error: Invalid value for '--dtype': 'fp8': expected one of bf16, fp16, fp32\n"),
    (("--nproc", "0"), "Error: Invalid value for '--nproc': 0 is not in the range x>=1.\n"),
])
def test_bad_values_are_usage_errors_before_any_work(usage_error, args, message):
    """A value wrong on its own is a usage error (exit 2, tpplan.cli's rule), found before torch is touched."""
    assert usage_error("measure", *args).endswith(message)


def test_the_library_refuses_the_same_values_in_one_line():
    """Python callers of measure_command get the same checks as one MeasurementError each."""
    from tpplan.errors import MeasurementError
    from tpplan.measure.command import MeasureRequest, measure_command

    for kw, line in ((dict(tp="2,x"), "--tp '2,x': expected comma-separated whole numbers such as 2,4,8"),
                     (dict(backend="mpi"), "--backend 'mpi': expected one of gloo, nccl"),
                     (dict(dtype="fp8"), "--dtype 'fp8': measure runs bf16, fp16, fp32"),
                     (dict(nproc=0), "--nproc 0: expected at least 1")):
        with pytest.raises(MeasurementError, match=f"^{re.escape(line)}$"):
            measure_command(MeasureRequest(**kw))


def test_nccl_without_gpus_is_an_error_line(run_cli):
    if torch.cuda.is_available():
        pytest.skip("this node has CUDA; the refusal is for nodes without it")
    r = run_cli("measure", "--backend", "nccl", "--quick")
    assert (r.code, r.err) == (1, "Error: --backend nccl needs CUDA GPUs and this node has none; use --backend gloo\n")


def test_bad_from_file(run_cli, tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"a": 1}')
    r = run_cli("measure", "--from", str(p))
    assert r.code == 1 and "not a tpplan measurement" in r.err and "Traceback" not in r.err


# ---- pure logic: no processes -------------------------------------------------------------------------------


class _FakeTimer:
    """A clock that advances 1 s per call of the timed function (a timer injected instead of CUDA events)."""

    method = "fake_clock"

    def per_call_s(self, fn, *, calls):
        for _ in range(calls):
            fn()
        return 1.0 + calls * 0.0


class _FakeCapture:
    method = "fake_graph"

    def __init__(self):
        self.captured = 0

    def capture(self, fn):
        self.captured += 1
        return fn


class _FailingCapture:
    method = "fake_graph"

    def capture(self, fn):
        raise RuntimeError("operation not permitted when stream is capturing")


def test_layer_step_is_captured_once_and_replayed_with_the_injected_timer():
    from tpplan.kernels.stack import Timing, time_matmul, time_step

    calls, capture = [], _FakeCapture()
    t = Timing(timer=_FakeTimer(), capture=capture, cache_bytes=0, repeats=3, replays=4, warmup=2)
    out = time_step(lambda: calls.append(1), t)
    assert capture.captured == 1 and len(calls) == 2 + 3 * 4 and out["timing"] == "fake_graph+fake_clock"
    failed = time_step(lambda: None, Timing(timer=_FakeTimer(), capture=_FailingCapture(), cache_bytes=0))
    assert failed["timing"] == "eager+fake_clock" and "graph capture failed" in failed["timing_note"]
    w = torch.zeros(64, 32)  # 8 KiB; a 40 KiB "cache" needs 4 x 40 / 8 = 20 copies to stream from memory
    m = time_matmul(torch.zeros(2, 32), w, Timing(timer=_FakeTimer(), capture=capture, cache_bytes=40 * 1024),
                    min_copies=1)
    assert m["copies"] == 20 and m["best_s"] == pytest.approx(1.0 / 20)


def test_device_kinds_by_exact_model_and_form_factor():
    from tpplan.hardware.loader import builtin_names, load_builtin
    from tpplan.measure.devices import PROFILE_FOR_KIND, device_kind

    # torch.cuda.get_device_name() strings (nvidia-smi product names; the SXM one from shared/reference/gpu)
    assert device_kind("NVIDIA H100 80GB HBM3") == "h100-sxm"
    assert device_kind("NVIDIA H100 PCIe") == "h100-pcie"
    assert device_kind("NVIDIA H100 NVL") == "h100-nvl"
    assert device_kind("NVIDIA A100-SXM4-80GB") == "a100-sxm-80gb"
    assert device_kind("NVIDIA A100 80GB PCIe") == "a100-pcie-80gb"
    assert device_kind("NVIDIA L4") == "l4" and device_kind("NVIDIA L40S") == "l40s"
    assert device_kind("NVIDIA GH200 480GB") == "gh200" and device_kind("NVIDIA H200") == "h200-sxm"
    assert device_kind("NVIDIA RTX A6000") is None
    for name in builtin_names():  # every built-in profile's GPU has a kind, and its kind's default profile agrees
        kind = device_kind(load_builtin(name).gpu.name)
        assert kind in PROFILE_FOR_KIND, name
        assert device_kind(load_builtin(PROFILE_FOR_KIND[kind]).gpu.name) == kind


def test_unknown_gpu_and_wrong_kind_are_clear_errors():
    from tpplan.errors import MeasurementError
    from tpplan.measure.devices import check_calibration_target, default_profile_for, device_kind

    with pytest.raises(MeasurementError, match=r"GPU 'NVIDIA RTX A6000' matches no built-in profile; pass --hardware"):
        default_profile_for(device_kind("NVIDIA RTX A6000"), "NVIDIA RTX A6000")
    with pytest.raises(MeasurementError, match="pass --force to write it anyway"):
        check_calibration_target(measured="h100-pcie", profile_gpu="H100 SXM5 80GB", profile_name="dgx-h100",
                                 force=False)
    check_calibration_target(measured="h100-pcie", profile_gpu="H100 SXM5 80GB", profile_name="dgx-h100", force=True)
    check_calibration_target(measured="h100-sxm", profile_gpu="H100 SXM5 80GB", profile_name="dgx-h100", force=False)


def _plan(nproc, backend="nccl", **kw):
    from tpplan.measure.run import MeasureOptions, plan_launches
    from tpplan.models.resolve import resolve_model

    o = MeasureOptions(model=resolve_model(kw.pop("model", "llama-70b")).spec, nproc=nproc, backend=backend,
                       dtype="bf16", **kw)
    return plan_launches(o)


def test_one_gpu_node_emulates_every_allowed_degree_and_runs_no_collective():
    launches, notes = _plan(1)
    assert [(j.workload, j.nproc) for j in launches] == [("tp_layer", 1)] * 4 + [("kernel_table", 1)]
    assert [j.args[j.args.index("--emulate-tp") + 1] for j in launches[:4]] == ["1", "2", "4", "8"]
    shapes = launches[-1].args[launches[-1].args.index("--shapes") + 1].split(",")
    assert "1280x8192" in shapes  # llama-70b tp 8 qkv: (64/8 + 2 x 8/8) x 128 rows, hidden 8192
    # a degree the user names that the model cannot run is refused up front, not skipped (64 heads, not / 3)
    with pytest.raises(MeasurementError, match=r"^--emulate-tp 3: Llama-3.1-70B's heads / KV heads / intermediate do "
                                               r"not divide by 3; degrees it allows up to 16: 1, 2, 4, 8, 16$"):
        _plan(1, emulate_tp=(3, 4), kernel_table=False)
    with pytest.raises(MeasurementError, match=r"^--tp 3: "):
        _plan(4, tp_degrees=(3,), kernel_table=False)


def test_cpu_ranks_above_cores_warn():
    from tpplan.measure.run import Node, check_ranks

    node = Node(backend="gloo", device_count=0, device_names=[], nccl_version=None, cpu_count=2)
    assert check_ranks(node, 2) == []
    assert "exceeds this machine's 2 CPU cores" in check_ranks(node, 4)[0]


def _synthetic_results(rng):
    """A seeded 'machine': matmuls cost 5 us + bytes at 2 TB/s (or FLOPs at 400 TFLOP/s), layers add 30 us,
    all-reduces 8 us + bytes at 100 GB/s; 3% noise."""
    from tpplan.measure.predict import layer_matmuls
    from tpplan.measure.shapes import LayerShape

    shape = LayerShape(hidden=4096, heads=32, kv_heads=8, head_dim=128, intermediate=14336, gated=True, scale=1)
    items = []
    for tokens in (1, 4, 16, 64, 256, 1024, 4096):
        mm = []
        for name, (m, n, k) in zip(("qkv", "o", "gate_up", "down"), layer_matmuls(shape, tp=2, tokens=tokens),
                                   strict=True):
            t = 5e-6 + max((n * k + m * k + m * n) * 2 / 2e12, 2 * m * n * k / 400e12)
            mm.append(t)
            items.append({"kind": "matmul", "name": name, "mode": "decode", "tp": 2, "tokens": tokens, "m": m,
                          "n": n, "k": k, "flops": 2 * m * n * k, "measured_s": t * rng.uniform(0.97, 1.03)})
        ar = 8e-6 + tokens * 4096 * 2 / 100e9
        items.append({"kind": "layer", "mode": "decode", "tp": 2, "tokens": tokens, "context": 256,
                      "measured_s": (sum(mm) + 2 * ar + 30e-6 + 10e-6) * rng.uniform(0.97, 1.03)})
    for n_bytes in (4096 * 4 ** i for i in range(8)):
        items.append({"kind": "allreduce", "tp": 2, "bytes": n_bytes,
                      "measured_s": (8e-6 + n_bytes / 100e9) * rng.uniform(0.97, 1.03)})
    shape_json = {"hidden": 4096, "heads": 32, "kv_heads": 8, "head_dim": 128, "intermediate": 14336, "gated": True}
    return [{"workload": "tp_layer", "environment": {"backend": "nccl", "world_size": 2}, "shape": shape_json,
             "items": items, "checks": []}]


def test_calibration_lowers_the_held_out_error_on_a_seeded_run():
    import random

    from tpplan.hardware.loader import load_builtin
    from tpplan.measure.compare import compare
    from tpplan.models.resolve import resolve_model

    m = compare(_synthetic_results(random.Random(11)), model=resolve_model("llama-8b").spec,
                profile=load_builtin("dgx-h100"), dtype="bf16", backend="nccl", notes=[])
    s = m.summary
    assert s.median_abs_error_pct_after < s.median_abs_error_pct_before_held_out / 3
    assert s.median_abs_error_pct_after < 10
    assert 3e-6 < s.kernel_fixed_time_s < 7e-6  # the 5 us per kernel the synthetic machine charges


def test_no_error_is_reported_for_a_prediction_that_is_zero_by_construction():
    from tpplan.hardware.loader import load_builtin
    from tpplan.measure.compare import compare
    from tpplan.models.resolve import resolve_model

    results = [{"workload": "collectives", "environment": {"backend": "nccl", "world_size": 1},
                "items": [{"kind": "allreduce", "tp": 1, "bytes": 4096, "measured_s": 3e-5}]}]
    m = compare(results, model=resolve_model("llama-8b").spec, profile=load_builtin("dgx-h100"), dtype="bf16",
                backend="nccl", notes=[])
    (item,) = m.items
    assert item.predicted == 0 and item.error_pct is None and "zero by construction" in item.note
    assert m.summary.median_abs_error_pct_before is None


def test_kernel_table_interpolates_in_m_and_round_trips_through_yaml():
    import dataclasses

    from tpplan.hardware.kernel_table import KernelTable, MatmulCurve, matmul_time_s
    from tpplan.hardware.loader import load_builtin, load_profile_text
    from tpplan.hardware.writer import profile_to_yaml

    curve = MatmulCurve(n=6144, k=4096, dtype="bf16", tokens=(1, 16, 256), time_s=(20e-6, 21e-6, 45e-6))
    table = KernelTable(source="test", kernel_fixed_time_s=4e-6, layer_overhead_s={"decode": 9e-6}, matmul=(curve,))
    assert matmul_time_s(table, m=136, n=6144, k=4096, dtype="bf16") == pytest.approx(33e-6)  # halfway 16..256
    assert matmul_time_s(table, m=1, n=6144, k=4096, dtype="bf16") == pytest.approx(20e-6)
    assert matmul_time_s(table, m=512, n=6144, k=4096, dtype="bf16") == pytest.approx(90e-6)  # FLOP-bound beyond
    assert matmul_time_s(table, m=1, n=6144, k=4096, dtype="fp8") is None
    assert matmul_time_s(None, m=1, n=6144, k=4096, dtype="bf16") is None
    profile = dataclasses.replace(load_builtin("dgx-h100"), kernel_table=table)
    back = load_profile_text(profile_to_yaml(profile), origin="test").kernel_table
    assert back.matmul[0].tokens == (1, 16, 256) and back.matmul[0].time_s == pytest.approx(curve.time_s)
    assert back.kernel_fixed_time_s == pytest.approx(4e-6) and back.layer_overhead_s == pytest.approx({"decode": 9e-6})


def test_kernel_table_yaml_errors_name_the_field():
    from tpplan.errors import ProfileError
    from tpplan.hardware.loader import load_builtin, load_profile_text
    from tpplan.hardware.writer import profile_to_yaml

    text = profile_to_yaml(load_builtin("dgx-h100")) + ("kernel_table:\n  source: x\n  matmul:\n"
                                                         "  - {n: 8, k: 8, dtype: bf16, tokens: [1, 2], time: [3]}\n")
    with pytest.raises(ProfileError, match="tokens has 2 values but time has 1"):
        load_profile_text(text, origin="t.yaml")


def test_python_api_misuse_raises_the_tpplan_error_family():
    from tpplan.errors import MeasurementError
    from tpplan.hardware.loader import load_builtin
    from tpplan.measure.compare import compare
    from tpplan.models.resolve import resolve_model

    with pytest.raises(MeasurementError, match="nproc"):
        launch_mod.launch("collectives", [], nproc=0, timeout_s=10)
    spec, h100 = resolve_model("llama-8b").spec, load_builtin("dgx-h100")
    with pytest.raises(MeasurementError, match="no results"):
        compare([], model=spec, profile=h100, dtype="bf16", backend="nccl", notes=[])
    with pytest.raises(MeasurementError, match="lists no fp32 peak"):  # never the bf16 peak in silence
        compare(_synthetic_results(__import__("random").Random(1)), model=spec,
                profile=h100, dtype="fp32", backend="nccl", notes=[])


# ---- a TP group larger than the run's ranks (audit: StopIteration in calibrate._fit_tier) ---------------------


def test_tp_above_nproc_is_refused_in_one_line_before_any_rank_starts(refusal):
    """--tp 2 launches a 2-rank group that the profile sized for --nproc 1 ranks cannot place; refused up front."""
    assert refusal("measure", "--tp", "2", "--nproc", "1", "--quick", "--backend", "gloo") == (
        "Error: --tp 2 needs 2 ranks but this run has 1 (--nproc); pass --nproc 2, or --emulate-tp 2 to time rank "
        "0's shard on one rank (compute only)")


def _gloo_results() -> list[dict]:
    """A kernel-table result on one rank, then 2-rank all-reduces (what --from reads from two saved runs)."""
    items = [{"kind": "allreduce", "tp": 2, "bytes": 4096 * 4 ** i, "measured_s": 4e-4 + 4096 * 4 ** i / 1.8e9}
             for i in range(6)]
    env = {"backend": "gloo", "device_names": []}
    return [{"workload": "kernel_table", "environment": {**env, "world_size": 1}, "items": []},
            {"workload": "collectives", "environment": {**env, "world_size": 2}, "items": items}]


def test_from_files_size_the_cpu_profile_to_the_largest_group_that_ran(run_cli, tmp_path):
    raw = tmp_path / "raw.json"
    raw.write_text(json.dumps(_gloo_results()))
    r = run_cli("measure", "--from", str(raw), "--format", "json")
    assert r.code == 0, r.err
    assert {i["tp"] for i in r.json()["items"]} == {2} and "Traceback" not in r.err


def test_a_collective_in_a_tier_the_profile_lacks_is_one_error_not_a_fit_crash():
    from tpplan.errors import MeasurementError
    from tpplan.hardware.loader import load_builtin
    from tpplan.measure.compare import compare
    from tpplan.models.resolve import resolve_model

    results = [{"workload": "collectives", "environment": {"backend": "nccl", "world_size": 16},
                "items": [{"kind": "allreduce", "tp": 16, "bytes": 4096, "measured_s": 3e-5}]}]
    line = ("allreduce over 16 ranks crosses the network tier, which profile h100-pcie (8 GPU(s) per node, no "
            "network collectives) does not describe; pass --hardware with a profile of the node that ran it")
    with pytest.raises(MeasurementError, match=f"^{re.escape(line)}$"):
        compare(results, model=resolve_model("llama-8b").spec, profile=load_builtin("h100-pcie"), dtype="bf16",
                backend="nccl", notes=[])


def _descends_from(pid: int, root: int) -> bool:
    """True when `root` is among `pid`'s ancestors (from /proc/<pid>/stat's parent field)."""
    for _ in range(64):
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if pid == root:
            return True
        if pid <= 1:
            return False
    return False


def _kernel_pids() -> set[int]:
    """Every process running a tpplan kernel, whoever its parent (an orphan is reparented to init)."""
    out = set()
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            if b"tpplan.kernels" in open(cmdline, "rb").read():
                out.add(int(cmdline.split("/")[2]))
        except OSError:
            continue
    return out


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("sig,code,line", [
    ("SIGTERM", 1, "Error: stopped by SIGTERM: every rank was ended and the temporary folder removed; nothing was "
                   "written"),
    ("SIGINT", 130, "Error: interrupted")])
def test_sigterm_ends_every_rank_and_removes_the_temporary_folder(sig, code, line, tmp_path):
    """`timeout` (or a batch scheduler) sends SIGTERM: the run ends with one Error line, its ranks end with it and
    the temporary folder goes, as with Ctrl-C (SIGINT; Python's default SIGTERM would exit without either)."""
    import signal
    import subprocess
    import sys
    import time

    before_pids = _kernel_pids()
    private = {**os.environ, "TMPDIR": str(tmp_path)}  # its own temp root: another run's folders cannot count
    proc = subprocess.Popen([sys.executable, "-m", "tpplan", "measure", "--quick", "--nproc", "2", "--backend", "gloo",
                             "--hardware", "cpu-gloo", "--no-kernel-table"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=private)
    deadline = time.monotonic() + 120

    def own_ranks() -> set[int]:  # this run's ranks only: another run on the machine may start ranks meanwhile
        return {p for p in _kernel_pids() - before_pids if _descends_from(p, proc.pid)}

    while not own_ranks() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before its ranks could be seen"
    ranks = own_ranks()
    assert list(tmp_path.glob("tpplan-measure-*"))  # the run's folder is where this test looks for it
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert err.strip().splitlines()[-1] == line
    gone = time.monotonic() + 10  # SIGKILLed ranks leave within the launcher's grace; allow for a loaded machine
    while ranks & _kernel_pids() and time.monotonic() < gone:
        time.sleep(0.1)
    assert not (ranks & _kernel_pids()) and not list(tmp_path.glob("tpplan-measure-*"))


@pytest.mark.slow
def test_markdown_output_is_a_markdown_table(quick_run, run_cli):
    _, d, _, raw = quick_run
    r = run_cli("measure", "--from", str(raw), "-f", "markdown")
    assert r.code == 0
    lines = r.out.splitlines()
    assert lines[0].startswith("**tpplan measure: gloo x2") and lines[2].startswith("| item | predicted | measured |")
    assert sum(line.startswith("| ") for line in lines) == len(d["items"]) + 1
    assert any(line.startswith("- All timed items: median |error|") for line in lines)


@pytest.mark.slow
def test_a_run_without_collectives_keeps_the_profiles_collective_source(quick_run, run_cli, tmp_path):
    """Calibrating from a run that timed no collective (one rank, or --from without them) credits the run with the
    efficiencies only: the collectives section keeps the base profile's source, and the node its size."""
    import yaml

    _, _, _, raw = quick_run
    layers_only = tmp_path / "layers.json"
    kept = [r | {"items": [it for it in r["items"] if it["kind"] not in ("allreduce", "allgather", "reducescatter")]}
            for r in json.loads(raw.read_text()) if r["workload"] != "collectives"]
    layers_only.write_text(json.dumps(kept))
    out = tmp_path / "cal.yaml"
    r = run_cli("measure", "--from", str(layers_only), "--hardware", "cpu-gloo", "--out", str(out))
    assert r.code == 0, r.err
    written, base = yaml.safe_load(out.read_text()), yaml.safe_load(
        (ROOT_DIR / "hardware_profiles" / "cpu-gloo.yaml").read_text())
    assert written["source"]["collectives"] == base["source"]["collectives"]
    assert written["source"]["efficiency"].startswith("tpplan measure on ")
    assert written["node"]["gpus_per_node"] == base["node"]["gpus_per_node"]


def test_fewer_cpu_ranks_than_the_profiles_node_keep_the_node():
    from tpplan.measure.command import MeasureRequest, _profile

    two = _profile(MeasureRequest(hardware="cpu-gloo"), kind=None, device_name="", gloo_ranks=1)
    assert two.gpus_per_node == 2
    assert _profile(MeasureRequest(hardware="cpu-gloo"), kind=None, device_name="", gloo_ranks=4).gpus_per_node == 4


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_sighup_under_nohup_does_not_stop_the_run():
    """`nohup` ignores SIGHUP; the measurement keeps it ignored (only a handled SIGHUP ends the run)."""
    import signal
    import subprocess
    import sys
    import time

    before = _kernel_pids()
    proc = subprocess.Popen([sys.executable, "-m", "tpplan", "measure", "--quick", "--nproc", "2", "--backend", "gloo",
                             "--hardware", "cpu-gloo", "--skip-layer", "--no-kernel-table"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    deadline = time.monotonic() + 120
    while not {p for p in _kernel_pids() - before if _descends_from(p, proc.pid)} and proc.poll() is None and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=150)
    assert proc.returncode == 0, err


def test_a_failed_rank_is_one_line_naming_the_signal_or_the_exception(tmp_path, monkeypatch):
    """A rank's traceback is reduced to its exception line; a signal is named; a rank that timed out waiting names
    the ranks still running, the likely culprits (tpplan.measure.launch.rank_failure)."""
    from tpplan.measure.launch import rank_failure

    monkeypatch.delenv("TPPLAN_DEBUG", raising=False)
    err = tmp_path / "rank0.stderr"
    err.write_text('[rank0]: Traceback (most recent call last):\n[rank0]:   File "x.py", line 1, in f\n'
                   "[rank0]:     work.wait()\n[rank0]: RuntimeError: [../gloo/transport/unbound_buffer.cc:81] Timed "
                   "out waiting 8000ms for recv operation to complete\n")
    line = rank_failure("tp_layer", 0, 1, [1, None], err)
    assert line.startswith("tp_layer: rank 0 timed out waiting for rank 1, still running (hung or stopped): "
                           "RuntimeError: [../gloo/transport/unbound_buffer.cc:81] Timed out waiting 8000ms")
    assert "File " not in line and "[rank0]" not in line
    killed = rank_failure("collectives", 1, -9, [None, -9], tmp_path / "missing.stderr")
    assert killed.startswith("collectives: rank 1 was killed by SIGKILL with no message; rerun")
    monkeypatch.setenv("TPPLAN_DEBUG", "1")
    assert "its stderr ends: [rank0]: Traceback" in rank_failure("tp_layer", 0, 1, [1, None], err)


@pytest.mark.parametrize("args,line", [
    (("--quick", "--skip-layer", "--tp", "2"),
     "Error: --tp picks the TP degrees of the layer, which --skip-layer leaves out: drop --tp, or drop --skip-layer"),
    (("--from", "x.json", "--quick", "--threads", "4"),
     "Error: --from compares saved results and runs nothing: drop --quick / --threads, or drop --from"),
    (("--nproc", "1", "--skip-layer"),
     "Error: --skip-layer on --nproc 1 measures nothing: it runs only collectives, which need 2 or more ranks; drop "
     "--skip-layer, or pass --nproc 2 or more"),
    (("--quick", "--tp", "3", "--nproc", "3"),
     "Error: --tp 3: Llama-3.1-8B's heads / KV heads / intermediate do not divide by 3; degrees it allows up to 16: "
     "1, 2, 4, 8, 16")])
def test_measure_options_that_cannot_work_together_are_refused_before_any_rank(run_cli, args, line):
    r = run_cli("measure", *args)
    assert r.code == 1 and r.err.strip() == line  # one line: no oversubscription warning before it


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_measure_timeout_must_be_finite(run_cli, value):
    r = run_cli("measure", "--quick", "--timeout", value)
    assert r.code == 2 and "is not a finite number" in r.err


def test_ctrl_c_while_ranks_start_waits_until_every_rank_is_known():
    """tpplan.measure.launch starts the ranks with Ctrl-C held: a signal in between is delivered once all are
    started (and so all are ended by the launcher), not between a rank's start and its registration."""
    import signal

    from tpplan.measure.launch import _signals_deferred

    started = []
    with pytest.raises(KeyboardInterrupt):
        with _signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            started.append("rank 0")
            started.append("rank 1")  # still reached: the interrupt waits for the block's end
    assert started == ["rank 0", "rank 1"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
