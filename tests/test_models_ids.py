"""The ids people serve: Hub organisations, -Instruct / -it / -chat / -Base variants, the local HF cache (offline)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tpplan.errors import ModelSpecError
from tpplan.models.resolve import resolve_model, variant_key

CONFIGS = Path(__file__).parent / "data" / "configs"


@pytest.mark.parametrize(("typed", "name"), [
    ("meta-llama/Llama-3.1-70B-Instruct", "Llama-3.1-70B"), ("meta-llama/Meta-Llama-3.1-8B-Instruct", "Llama-3.1-8B"),
    ("google/gemma-2-27b-it", "Gemma-2-27B"), ("Qwen/Qwen2.5-72B", "Qwen2.5-72B"),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "Mixtral-8x7B-v0.1"), ("llama-2-7b-chat", "Llama-2-7B"),
    ("meta-llama/Llama-2-13b-chat-hf", "Llama-2-13B"), ("Qwen2.5-7B-Base", "Qwen2.5-7B")])
def test_variants_resolve_to_the_same_shapes(typed, name):
    r = resolve_model(typed)
    assert r.spec.name == name and r.via_alias
    base = resolve_model(name).spec
    assert (r.spec.hidden_size, r.spec.num_hidden_layers, r.spec.vocab_size) == (
        base.hidden_size, base.num_hidden_layers, base.vocab_size)


def test_typed_hub_id_is_kept_for_serve_commands(run_cli):
    r = resolve_model("meta-llama/Llama-3.1-70B-Instruct")
    assert r.served_id == r.spec.hf_id == "meta-llama/Llama-3.1-70B-Instruct"
    assert resolve_model("llama-70b").served_id == "meta-llama/Llama-3.1-70B"
    out = run_cli("recommend", "-m", "google/gemma-2-27b-it", "--hardware", "dgx-h100", "--gpus", "2", "--emit", "vllm")
    assert "vllm serve google/gemma-2-27b-it" in out.out


def test_other_versions_and_quantized_repos_do_not_match():
    assert variant_key("mistralai/Mistral-7B-Instruct-v0.2") != variant_key("Mistral-7B-v0.1")
    with pytest.raises(ModelSpecError, match=r"pass the path of its config.json .*--download-config"):
        resolve_model("hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4")


def _cache(root: Path, repo: str, config: Path) -> None:
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "snapshots" / "abc123").mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("abc123")
    shutil.copy(config, folder / "snapshots" / "abc123" / "config.json")


def test_local_hf_cache_offline(tmp_path, monkeypatch, run_cli):
    repo = "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4"
    _cache(tmp_path / "hub", repo, CONFIGS / "llama-3.1-70b-awq-int4.json")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    r = resolve_model(repo)
    assert r.spec.quantization.name == "awq-int4-g128" and r.served_id == repo
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    d = run_cli("models", "show", repo, "-f", "json").json()
    assert d["dtype"] == "awq-int4-g128" and d["hf_id"] == repo


def test_unknown_hub_id_error_names_the_cache_and_the_fix(tmp_path, monkeypatch, run_cli):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    r = run_cli("models", "show", "acme/NoSuchModel-7B")
    assert r.code == 1 and r.err.count("\n") == 1
    assert str(tmp_path) in r.err and "config.json" in r.err


def test_download_is_never_the_default(tmp_path, monkeypatch):
    """Without --download-config nothing is fetched (tests never use the network): the error comes back instead."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("tpplan.models.resolve.download_config",
                        lambda repo: pytest.fail("download attempted without the flag"))
    with pytest.raises(ModelSpecError):
        resolve_model("acme/NoSuchModel-7B")
    monkeypatch.setattr("tpplan.models.resolve.download_config", lambda repo: CONFIGS / "llama-3.1-70b-awq-int4.json")
    assert resolve_model("acme/NoSuchModel-7B", download=True).spec.hf_id == "acme/NoSuchModel-7B"
