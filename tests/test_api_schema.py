"""The Python API and the published JSON Schemas of `-f json` output."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

import tpplan
from tpplan.errors import TpplanError
from tpplan.planner.compare import parse_layout


def test_python_api_has_real_signatures_and_docstrings():
    sig = inspect.signature(tpplan.recommend)
    assert "gpus" in sig.parameters and "price_per_gpu_hour" in sig.parameters
    assert all(p.kind is not inspect.Parameter.VAR_POSITIONAL for p in sig.parameters.values())
    assert "Returns a Plan" in tpplan.recommend.__doc__
    plan = tpplan.recommend("llama-70b", gpus=8)
    assert isinstance(plan, tpplan.Plan)
    d = plan.to_dict()
    json.dumps(d)  # plain JSON types only
    assert d["recommended"]["tp"] == plan.recommended.tp and d["inputs"]["engine"] == "vllm"
    assert plan.serve_command().startswith("vllm serve") and plan.serve_command("vllm") == plan.serve_command()
    with pytest.raises(TpplanError, match=r"^serve_command\('trtllm'\) of a plan made for vllm: the plan follows "
                                          r"vllm's rules; call serve_command\(\) or plan again with "
                                          r"engine='trtllm'$"):
        plan.serve_command("trtllm")
    sg = tpplan.recommend("llama-70b", gpus=8, engine="sglang")
    assert sg.serve_command("sglang").startswith("python -m sglang.launch_server")


def test_import_tpplan_loads_no_planner():
    code = "import sys, tpplan; print(any(m.startswith('tpplan.planner') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


@pytest.mark.parametrize("cmd, args", [
    ("recommend", ["recommend", "--model", "llama-70b", "--gpus", "8", "--emit", "vllm", "--tp", "4"]),
    ("recommend", ["recommend", "--model", "llama-70b", "--gpus", "1"]),  # nothing fits: nulls and suggestions
    ("recommend", ["recommend", "--model", "llama-8b", "--gpus", "8", "--workload", "train", "--tp", "2"]),
    ("sweep", ["sweep", "--models", "llama-8b", "--gpus", "2", "--batch", "1,8"]),
    ("compare", ["compare", "--model", "llama-70b", "--gpus", "8", "8", "4x1x2", "2x2x2"]),
    ("compare", ["compare", "--model", "mixtral", "--gpus", "8", "8", "8+ep8", "1+dp8+ep8", "--num-requests", "64"]),
    ("compare", ["compare", "--model", "llama-70b", "--gpus", "4", "1", "2x2x1"]),  # one layout does not run
])
def test_outputs_validate_against_their_schema(run_cli, cmd, args):
    schema = run_cli("schema", cmd).json()
    doc = run_cli(*args, "-f", "json").json()
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)]
    assert not errors
    if cmd == "recommend":
        bad = dict(doc, schema_version=2)
        assert list(jsonschema.Draft202012Validator(schema).iter_errors(bad))


def test_recommend_schema_describes_fields_by_their_docstrings(run_cli):
    """Candidate's field docstrings are the schema's descriptions, e.g. the training memory keys (null when
    serving)."""
    cand = run_cli("schema", "recommend").json()["$defs"]["Candidate"]["properties"]
    for key, words in (("activation_bytes_per_gpu", "Korthikanti"),
                       ("model_state_bytes_per_gpu", "weights + gradients + optimizer state")):
        assert cand[key]["anyOf"] == [{"type": "integer"}, {"type": "null"}]
        assert words in cand[key]["description"] and "None (JSON null) when serving" in cand[key]["description"]
    assert "tp" in cand and cand["tp"]["description"].startswith("Attention (and dense-layer) TP degree")


def test_infeasible_rows_have_null_latencies_and_suggestions_have_flags(run_cli):
    d = run_cli("recommend", "--model", "llama-70b", "--gpus", "4", "-f", "json").json()
    rejected = [c for c in d["candidates"] if not c["feasible"]]
    assert rejected and all(c["tpot_s"] is None and c["ttft_s"] is None for c in rejected)
    d = run_cli("recommend", "--model", "llama-70b", "--gpus", "1", "-f", "json").json()
    more = next(s for s in d["suggestions"] if s["flag"] and s["flag"].startswith("--gpus"))
    n = int(more["flag"].split()[1])
    # the fewest GPUs that really fit: n fits (as re-planned), n - 1 does not
    assert more["would_give"]["gpus_used"] <= n
    assert tpplan.recommend("llama-70b", gpus=n).recommended is not None
    assert tpplan.recommend("llama-70b", gpus=n - 1).recommended is None


def test_any_gpu_count_pp3_and_unused_gpus():
    plan = tpplan.recommend("llama-70b", gpus=6)
    shapes = {(c.tp, c.pp) for c in plan.candidates}
    assert (2, 3) in shapes and (1, 3) in shapes and (1, 6) in shapes
    plan = tpplan.recommend("llama-70b", gpus=6, objective="cost")
    assert plan.workload.objective == "cost"
    four = tpplan.recommend("llama-70b", gpus=6, tp=4)
    assert four.chosen.gpus_used == 4


def test_unused_gpus_are_stated(run_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    plan = tpplan.recommend("llama-70b", gpus=5)
    out = run_cli("recommend", "--model", "llama-70b", "--gpus", "5").out
    if plan.unused_gpus:
        assert f"{plan.unused_gpus} of 5 GPUs unused" in " ".join(out.split())
    assert plan.recommended.gpus_used + plan.unused_gpus == 5


def test_price_adds_cost_column_and_objective_cost(run_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    out = run_cli("recommend", "--model", "llama-8b", "--gpus", "8", "--price-per-gpu-hour", "2.5").out
    assert "$/M tok" in out
    d = run_cli("recommend", "--model", "llama-8b", "--gpus", "8", "--price-per-gpu-hour", "2.5", "-f", "json").json()
    c = d["recommended"]
    # $ per million tokens = price x GPUs / 3600 s / (tok/s) x 1e6
    assert c["cost_per_million_output_tokens"] == pytest.approx(2.5 * c["gpus_used"] / 3600 /
                                                               c["output_tokens_per_s"] * 1e6)


def test_chosen_layout_beside_the_best(run_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    r = run_cli("recommend", "--model", "llama-70b", "--gpus", "8", "--tp", "2", "--pp", "1", "--replicas", "4")
    assert r.code == 0 and "Your layout TP2 x PP1 x 4 replicas: rejected" in " ".join(r.out.split())
    d = run_cli("recommend", "--model", "llama-70b", "--gpus", "8", "--tp", "4", "-f", "json").json()
    assert d["chosen"]["tp"] == 4 and d["chosen"]["replicas"] == 2 and d["recommended"] is not None


def test_compare_layouts(run_cli):
    assert (parse_layout("4x2").tp, parse_layout("4x2").pp, parse_layout("2x1x4").replicas) == (4, 2, 4)
    d = run_cli("compare", "-m", "llama-70b", "-g", "8", "8", "4x1x2", "-f", "json").json()
    assert [(c["tp"], c["replicas"]) for c in d["layouts"]] == [(8, 1), (4, 2)]
    tp8, tp4 = d["layouts"]
    gain = tp4["output_tokens_per_s"] / tp8["output_tokens_per_s"] - 1  # the difference line says this, signed
    m = re.match(r"TP4xPP1x2 vs TP8xPP1x1: tok/s ([+-]\d+)% \((better|worse)\)", d["differences"][0])
    assert m and abs(int(m.group(1)) - 100 * gain) <= 1 and (m.group(2) == "better") == (gain > 0)
    best = max(d["layouts"], key=lambda c: c["output_tokens_per_s"])  # objective throughput: total tok/s
    assert (d["best_of_these"]["tp"], d["best_of_these"]["replicas"]) == (best["tp"], best["replicas"])
    r = run_cli("compare", "-m", "llama-70b", "8")
    assert (r.code, r.out) == (2, "")


def test_every_schema_is_a_schema_command(run_cli):
    """`tpplan schema` offers every schema tpplan.report.schemas publishes, compare's included, each a valid
    draft 2020-12 schema whose Candidate references resolve."""
    from tpplan.report.schemas import SCHEMAS

    for name in SCHEMAS:
        r = run_cli("schema", name)
        assert r.code == 0, (name, r.err)
        jsonschema.Draft202012Validator.check_schema(r.json())
    schema = run_cli("schema", "compare").json()
    assert schema["properties"]["layouts"]["items"] == {"$ref": "#/$defs/Candidate"}
    doc = run_cli("compare", "--model", "llama-70b", "--gpus", "8", "8", "4x1x2", "-f", "json").json()
    bad = dict(doc, layouts=[dict(doc["layouts"][0], tp="8")] + doc["layouts"][1:])  # a string where an int goes
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(bad))
    assert list(jsonschema.Draft202012Validator(schema).iter_errors({k: v for k, v in doc.items() if k != "layouts"}))


def _unlisted_keys(node: dict, doc, path: str = "") -> list[str]:
    """Keys `doc` holds that the schema `node` (no $refs) does not list; a map's keys (additionalProperties) are
    its own. With every listed key required, an empty answer means schema and document have the same keys."""
    if node.get("type") == "array" and isinstance(doc, list):
        return sorted({k for item in doc for k in _unlisted_keys(node["items"], item, path.rstrip(".") + "[].")})
    if "properties" not in node or not isinstance(doc, dict) or "additionalProperties" in node:
        return []
    nested = (_unlisted_keys(sub, doc[key], f"{path}{key}.") for key, sub in node["properties"].items() if key in doc)
    return [path + k for k in doc if k not in node["properties"]] + [k for keys in nested for k in keys]


def _schema_errors(schema: dict, doc) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)]


@pytest.mark.parametrize("args, shows", [
    (("llama-70b",), lambda d: d["moe_layers"] == [] and len(d["per_degree"]) == len(d["valid_tp_degrees"])),
    (("llama-70b", "--tp", "4", "--dtype", "fp8", "--kv-cache-dtype", "fp8"),  # --dtype override, one degree
     lambda d: [r["tp"] for r in d["per_degree"]] == [4] and d["weight_format"]["from_checkpoint"] is False
     and d["kv_cache_dtype"] == "fp8" and d["weight_bytes_by_component_per_gpu"]["tp"] == 4),
    (("mixtral", "--tp", "8"), lambda d: d["num_moe_layers"] == 32 and d["architecture"]["num_experts"] == 8),
    (("deepseek-v3",), lambda d: d["architecture"]["kv_lora_rank"] == 512  # MLA, the checkpoint's block FP8
     and d["weight_format"]["name"] == "fp8-block128x128" and d["weight_format"]["from_checkpoint"] is True),
    (("qwen3-next-80b-a3b", "--kv-cache-dtype", "fp8"), lambda d: d["linear_state_bytes_per_sequence"] > 0),
    (("llama4-scout",), lambda d: d["vision_params"] > 0 and d["num_chunked_attention_layers"] > 0),
    (("glm-4.5", "--tp", "8"), lambda d: d["num_nextn_predict_layers"] == 1 and d["mtp_params"] > 0),
])
def test_models_show_validates_against_schema_models(run_cli, args, shows):
    """`tpplan schema models` is `models show -f json`'s: each kind of model validates, and lists exactly its keys."""
    schema = run_cli("schema", "models").json()
    doc = run_cli("models", "show", *args, "-f", "json").json()
    assert shows(doc), args  # the case exercises the part of the document it is here for
    assert not _schema_errors(schema, doc)
    assert not _unlisted_keys(schema, doc)


def test_models_show_of_a_config_json_validates(run_cli, tmp_path):
    """A config.json path (Gemma-2-9B's catalogue config: an integer sliding_window, no alias), --tp given."""
    entry = json.loads((Path(tpplan.__file__).parent / "models" / "catalogue" / "gemma-2-9b.json").read_text())
    path = tmp_path / "config.json"
    path.write_text(json.dumps(entry["config"]))
    doc = run_cli("models", "show", str(path), "--tp", "2", "-f", "json").json()
    assert (doc["hf_id"], doc["resolved_from"], doc["architecture"]["sliding_window"]) == ("", None, 4096)
    schema = run_cli("schema", "models").json()
    assert not _schema_errors(schema, doc) and not _unlisted_keys(schema, doc)


def test_schema_models_rejects_wrong_types_and_describes_keys(run_cli):
    schema = run_cli("schema", "models").json()
    doc = run_cli("models", "show", "mixtral", "-f", "json").json()
    assert _schema_errors(schema, dict(doc, total_params="46.7B")) == ["['total_params']: '46.7B' is not of type "
                                                                      "'integer'"]
    bad = dict(doc, per_degree=[dict(doc["per_degree"][0], kv_heads_per_gpu=None)])
    assert _schema_errors(schema, bad) == ["['per_degree', 0, 'kv_heads_per_gpu']: None is not of type 'integer'"]
    assert _schema_errors(schema, {k: v for k, v in doc.items() if k != "weight_format"})
    # descriptions come from the docstrings of the fields and functions behind the keys
    assert schema["properties"]["mtp_params"]["description"].startswith("Parameters of the checkpoint's multi-token")
    assert schema["properties"]["total_params"]["description"] == ("Every parameter held in memory (tied embeddings "
                                                                  "once).")


def test_models_list_validates_against_schema_models_list(run_cli):
    schema = run_cli("schema", "models-list").json()
    rows = run_cli("models", "list", "-f", "json").json()
    assert len(rows) > 30 and not _schema_errors(schema, rows) and not _unlisted_keys(schema, rows)
    assert _schema_errors(schema, [dict(rows[0], aliases="llama-70b")])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"gpus": 2.5}, "gpus=2.5: expected a whole number (int)"),
    ({"gpus": True}, "gpus=True: expected a whole number (int)"),
    ({"gpus": "8"}, "gpus='8': expected a whole number (int)"),
    ({"max_model_len": float("nan")}, "max_model_len=nan: expected a whole number (int)"),
    ({"gpu_memory_utilization": "0.9"}, "gpu_memory_utilization='0.9': expected a number"),
    ({"engine": 8}, "engine=8: expected a string")])
def test_api_arguments_of_the_wrong_type_are_one_error(kwargs, message):
    """The CLI's parser checks its flags' types; the Python API checks its arguments the same way, before anything
    reads them: one TpplanError naming the argument, never a TypeError from deep inside or a silent plan."""
    with pytest.raises(TpplanError) as exc:
        tpplan.recommend("llama-8b", **kwargs)
    assert str(exc.value) == message
    with pytest.raises(TpplanError, match=r"^model=None: expected a catalogue name"):
        tpplan.recommend(None, gpus=8)


def test_api_compare_takes_layout_texts_and_refuses_other_things():
    from tpplan.planner.compare import Layout, parse_layout

    cmp = tpplan.compare("llama-8b", ["2x1x4", Layout(tp=8)], gpus=8)
    assert [(c.tp, c.replicas) for c in cmp.layouts] == [(2, 4), (8, 1)]
    with pytest.raises(TpplanError, match=r"^layout \(2, 1, 4\): expected a Layout or a text"):
        tpplan.compare("llama-8b", [(2, 1, 4), "8"], gpus=8)
    with pytest.raises(TpplanError, match=r"^tp=2.5: expected a whole number"):
        tpplan.compare("llama-8b", [Layout(tp=2.5), Layout(tp=8)], gpus=8)
    with pytest.raises(TpplanError, match=r"^layout '\u0668' is not "):  # an Arabic-Indic eight is not a degree
        parse_layout("\u0668")


def test_api_takes_numpy_integers_and_paths():
    """A sweep driven from pandas passes numpy integers; a config path may be a pathlib.Path."""
    import numpy as np

    from tpplan.files import package_dir

    plan = tpplan.recommend("llama-8b", gpus=np.int64(8), input_len=np.int32(512))
    assert json.loads(json.dumps(plan.to_dict()))["inputs"]["gpus"] == 8
    cfg = json.loads((package_dir("tpplan.models.catalogue") / "llama-3_1-8b.json").read_text())["config"]
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "config.json"
        path.write_text(json.dumps(cfg))
        assert tpplan.recommend(path, gpus=1).recommended is not None


def test_the_schema_documents_every_input_and_what_a_suggestion_would_give(run_cli):
    """`inputs` and `suggestions[].would_give` are keyed objects in the schema, not bare objects: every key the output
    carries is listed with its type (a key added to the output without the schema fails here)."""
    schema = run_cli("schema", "recommend").json()
    doc = run_cli("recommend", "--model", "llama-405b", "--gpus", "2", "-f", "json").json()
    assert set(doc["inputs"]) == set(schema["properties"]["inputs"]["properties"])
    given = next(s["would_give"] for s in doc["suggestions"] if s["would_give"])
    documented = schema["$defs"]["Suggestion"]["properties"]["would_give"]["anyOf"][1]["properties"]
    assert set(given) == set(documented)
    assert not list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    wrong = dict(doc, inputs=dict(doc["inputs"], gpus="2"))
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(wrong))
