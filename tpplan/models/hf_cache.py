"""config.json of a Hub id from the local Hugging Face cache (offline), or from the Hub behind an explicit opt-in.

Cache layout (huggingface_hub file_download / constants): $HF_HUB_CACHE, else $HF_HOME/hub, else
~/.cache/huggingface/hub; a repo lives in models--{org}--{name}/, refs/main names the snapshot, and the files are
in snapshots/{commit}/config.json. Nothing here touches the network unless `download_config` is called, and that
imports huggingface_hub only then.
"""

from __future__ import annotations

import os
from pathlib import Path

from tpplan.errors import ModelSpecError


def hub_cache_dir() -> Path:
    """Where huggingface_hub keeps downloads: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    return Path(home) / "hub"


def looks_like_hub_id(query: str) -> bool:
    """'org/name' with exactly one slash and no path that exists here."""
    parts = query.split("/")
    return len(parts) == 2 and all(parts) and not Path(query).exists()


def cached_config(repo_id: str) -> Path | None:
    """The cached config.json of `repo_id` (the refs/main snapshot, else the newest snapshot holding one)."""
    repo = hub_cache_dir() / f"models--{repo_id.replace('/', '--')}"
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo / "refs" / "main"
    if ref.is_file():
        main = snapshots / ref.read_text(encoding="utf-8").strip() / "config.json"
        if main.is_file():
            return main
    found = sorted(snapshots.glob("*/config.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return found[0] if found else None


def download_config(repo_id: str) -> Path:
    """Fetch config.json from the Hub (only when the user asked for it); needs huggingface_hub."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:
        raise ModelSpecError(f"--download-config needs huggingface_hub (pip install huggingface_hub); or download "
                             f"https://huggingface.co/{repo_id}/blob/main/config.json and pass its path") from exc
    try:
        return Path(hf_hub_download(repo_id, "config.json"))
    except Exception as exc:  # noqa: BLE001 - any Hub failure (auth, network, missing repo) becomes one error line
        raise ModelSpecError(f"could not download config.json of {repo_id!r} from the Hub ({exc}); download it "
                             f"yourself and pass its path") from exc
