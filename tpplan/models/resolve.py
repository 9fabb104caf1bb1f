"""Find a model by catalogue name, alias, or path to a Hugging Face config.json.

`llama-70b` resolves to Llama-3.1-70B and the caller is told so; an unknown name lists the closest
catalogue names.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from tpplan.errors import ModelSpecError
from tpplan.models.hf_config import load_config_file, spec_from_hf_config
from tpplan.models.spec import ModelSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogueEntry:
    spec: ModelSpec
    published_total_params: int
    published_total_source: str
    published_is_exact: bool
    """True when the published total is an exact count; False when it is rounded (e.g. '141B')."""
    published_active_params: int | None = None
    published_active_source: str = ""


@dataclass(frozen=True, slots=True)
class Resolved:
    spec: ModelSpec
    query: str
    """What the user typed."""
    via_alias: bool
    """True when `query` was a short alias rather than the model's own name or a path."""


def _entry_from_json(data: dict, origin: str) -> CatalogueEntry:
    spec = spec_from_hf_config(data["config"], origin=origin, name=data["name"],
                               extra={"hf_id": data["hf_id"], "aliases": tuple(data["aliases"]),
                                      "source": data["source"]})
    return CatalogueEntry(spec=spec, published_total_params=data["published_total_params"],
                          published_total_source=data["published_total_source"],
                          published_is_exact=data["published_is_exact"],
                          published_active_params=data.get("published_active_params"),
                          published_active_source=data.get("published_active_source", ""))


@cache
def _raw_entries() -> tuple[tuple[str, dict], ...]:
    """(file name, JSON dict) of every catalogue file; parsed once, specs built only on demand."""
    folder = resources.files("tpplan.models.catalogue")
    return tuple((f.name, json.loads(f.read_text(encoding="utf-8")))
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


def _looks_like_path(query: str) -> bool:
    return query.endswith(".json") or "/" in query and Path(query).exists() or Path(query).is_dir()


def resolve_model(query: str) -> Resolved:
    """A catalogue name, alias, HF id, or path to a config.json (or its directory)."""
    if _looks_like_path(query):
        return Resolved(load_config_file(Path(query)), query, False)
    table = _names()
    hit = table.get(query.lower())
    if hit is None:
        raw = dict(_raw_entries())
        close = difflib.get_close_matches(query.lower(), list(table), n=4, cutoff=0.5)
        names = list(dict.fromkeys(raw[table[c][0]]["name"] for c in close))
        hint = f"closest: {', '.join(names)}" if names else "see `tpplan models list`"
        raise ModelSpecError(f"unknown model {query!r}; {hint}; or pass a path to a Hugging Face config.json")
    file_name, via_alias = hit
    return Resolved(_entry(file_name).spec, query, via_alias)
