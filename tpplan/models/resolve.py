"""Find a model by catalogue name, alias, or path to a Hugging Face config.json.

`llama-70b` resolves to Llama-3.1-70B and the caller is told so; an unknown name lists the closest
catalogue names.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import replace
from functools import cache
from pathlib import Path

from tpplan.errors import ModelSpecError
from tpplan.files import load_json, package_dir
from tpplan.models.hf_cache import cached_config, download_config, hub_cache_dir, looks_like_hub_id
from tpplan.models.hf_config import load_config_file, spec_from_hf_config
from tpplan.models.spec import ModelSpec
from tpplan.records import record


@record
class CatalogueEntry:
    spec: ModelSpec
    published_total_params: int
    published_total_source: str
    published_is_exact: bool
    """True when the published total is an exact count; False when it is rounded (e.g. '141B')."""
    published_active_params: int | None = None
    published_active_source: str = ""
    published_total_includes_mtp: bool = False
    """True when the published total counts the checkpoint's MTP layers (a Hub safetensors total, e.g. GLM-4.5's
    358B), which tpplan's served count leaves out (tpplan.models.params.mtp_params); False when it is the model's
    own (DeepSeek-V3's 671B "Main Model weights")."""


@record(kw_only=False)
class Resolved:
    spec: ModelSpec
    query: str
    """What the user typed."""
    via_alias: bool
    """True when `query` was a short alias or a variant id rather than the model's own name or a path."""

    @property
    def served_id(self) -> str:
        """The id to put in a serve command: what the user typed when it is a Hub id, else the model's hf_id."""
        return self.query if looks_like_hub_id(self.query) else (self.spec.hf_id or self.spec.name)


def _entry_from_json(data: dict, origin: str) -> CatalogueEntry:
    spec = spec_from_hf_config(data["config"], origin=origin, name=data["name"],
                               extra={"hf_id": data["hf_id"], "aliases": tuple(data["aliases"]),
                                      "source": data["source"]})
    return CatalogueEntry(spec=spec, published_total_params=data["published_total_params"],
                          published_total_source=data["published_total_source"],
                          published_is_exact=data["published_is_exact"],
                          published_active_params=data.get("published_active_params"),
                          published_active_source=data.get("published_active_source", ""),
                          published_total_includes_mtp=data.get("published_total_includes_mtp", False))


@cache
def _raw_entries() -> tuple[tuple[str, dict], ...]:
    """(file name, JSON dict) of every catalogue file; parsed once, specs built only on demand."""
    folder = package_dir("tpplan.models.catalogue")
    return tuple((f.name, load_json(f.read_text(encoding="utf-8"), origin=f"catalogue/{f.name}"))
                 for f in sorted(folder.iterdir(), key=lambda f: f.name) if f.name.endswith(".json"))


@cache
def _entry(file_name: str) -> CatalogueEntry:
    data = dict(_raw_entries())[file_name]
    return _entry_from_json(data, f"catalogue/{file_name}")


@cache
def catalogue() -> tuple[CatalogueEntry, ...]:
    """Every built-in model, sorted by name."""
    return tuple(sorted((_entry(name) for name, _ in _raw_entries()), key=lambda e: e.spec.name.lower()))


@cache
def _names() -> dict[str, tuple[str, bool]]:
    """lower-case name / HF id / alias -> (catalogue file, is_alias)."""
    table: dict[str, tuple[str, bool]] = {}
    for file_name, data in _raw_entries():
        table[data["name"].lower()] = (file_name, False)
        table[data["hf_id"].lower()] = (file_name, False)
        for a in data["aliases"]:
            table[a.lower()] = (file_name, True)
    return table


_VARIANT_TOKENS = {"instruct", "it", "chat", "base", "hf"}


def variant_key(name: str) -> str:
    """The shape-defining part of an id: lower case, no Hub organisation, no -Instruct/-it/-chat/-Base/-hf tokens,
    no leading 'Meta-' ('meta-llama/Meta-Llama-3.1-70B-Instruct' -> 'llama-3.1-70b'). These variants are
    fine-tunes of one architecture; quantized repos keep their '-AWQ' / '-FP8' tokens and do not match."""
    tokens = [t for t in re.split(r"[-_]", name.lower().rsplit("/", 1)[-1]) if t and t not in _VARIANT_TOKENS]
    if len(tokens) > 1 and tokens[0] == "meta" and tokens[1].startswith("llama"):
        tokens = tokens[1:]
    return "-".join(tokens)


@cache
def _variant_names() -> dict[str, str]:
    """variant_key of every name / HF id / alias -> catalogue file."""
    table: dict[str, str] = {}
    for file_name, data in _raw_entries():
        for n in (data["name"], data["hf_id"], *data["aliases"]):
            table.setdefault(variant_key(n), file_name)
    return table


def _looks_like_path(query: str) -> bool:
    return query.endswith(".json") or "/" in query and Path(query).exists() or Path(query).is_dir()


def _unknown(query: str) -> ModelSpecError:
    table = _names()
    raw = dict(_raw_entries())
    close = difflib.get_close_matches(query.lower(), list(table), n=4, cutoff=0.5)
    names = list(dict.fromkeys(raw[table[c][0]]["name"] for c in close))
    hint = f"closest: {', '.join(names)}" if names else "see `tpplan models list`"
    if looks_like_hub_id(query):
        return ModelSpecError(
            f"unknown model {query!r} (not in the catalogue, not in the Hugging Face cache {hub_cache_dir()}); "
            f"{hint}; pass the path of its config.json (https://huggingface.co/{query}/blob/main/config.json), "
            f"or add --download-config to fetch it (needs huggingface_hub)")
    return ModelSpecError(f"unknown model {query!r}; {hint}; or pass a path to a Hugging Face config.json")


def resolve_model(query: str, *, download: bool = False) -> Resolved:
    """A catalogue name, alias, HF id (with -Instruct / -it / -chat / -Base variants and any organisation), a Hub id
    in the local HF cache, or a path to a config.json (or its directory). `download=True` (an explicit user flag)
    may fetch config.json from the Hub when nothing local matches."""
    if _looks_like_path(query):
        path = Path(query)
        checkpoint = (path if path.is_dir() else path.parent).resolve()
        return Resolved(replace(load_config_file(path), checkpoint_path=str(checkpoint)), query, False)
    hit = _names().get(query.lower())
    if hit is not None:
        file_name, via_alias = hit
        return Resolved(_entry(file_name).spec, query, via_alias)
    hub = looks_like_hub_id(query)
    cached = cached_config(query) if hub else None
    if cached is not None:
        return Resolved(_with_hf_id(load_config_file(cached), query), query, False)
    variant = _variant_names().get(variant_key(query))
    if variant is not None:
        spec = _entry(variant).spec
        return Resolved(_with_hf_id(spec, query) if hub else spec, query, True)
    if hub and download:
        return Resolved(_with_hf_id(load_config_file(download_config(query)), query), query, False)
    raise _unknown(query)


def _with_hf_id(spec: ModelSpec, hub_id: str) -> ModelSpec:
    """The same shapes under the Hub id the user typed (so serve commands name the checkpoint they serve)."""
    name = spec.name if spec.hf_id else hub_id.rsplit("/", 1)[-1]
    return replace(spec, hf_id=hub_id, name=name or spec.name)
