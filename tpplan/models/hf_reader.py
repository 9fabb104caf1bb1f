"""ConfigReader: reads typed fields from one config.json dict, naming the file in every error."""

from __future__ import annotations

from typing import Any

from tpplan.errors import ModelSpecError

MAX_FIELD_VALUE = 100_000_000
"""Largest count tpplan accepts in a config field (vocab, context, widths): beyond it the file is malformed."""
MAX_LAYERS = 10_000


class ConfigReader:
    """Reads fields from one config dict (Hugging Face spellings, first present name wins)."""

    def __init__(self, cfg: dict[str, Any], origin: str) -> None:
        self.cfg, self.origin = cfg, origin

    def get(self, *names: str, default: Any = None) -> Any:
        for n in names:
            if self.cfg.get(n) is not None:
                return self.cfg[n]
        return default

    def int(self, *names: str, default: int | None = None, required: bool = True, positive: bool = False,
            maximum: int = MAX_FIELD_VALUE) -> int:
        value = self.get(*names)
        if value is None:
            if default is not None or not required:
                return default if default is not None else 0
            raise ModelSpecError(f"{self.origin}: required field '{names[0]}' is missing; add it to the config "
                                 f"(Hugging Face spelling) or use a catalogue model (`tpplan models list`)")
        name = next((n for n in names if self.cfg.get(n) is not None), names[0])
        if isinstance(value, bool) or not isinstance(value, int) or value < (1 if positive else 0) or value > maximum:
            kind = "a positive" if positive else "a non-negative"
            raise ModelSpecError(f"{self.origin}: field '{name}' must be {kind} integer of at most {maximum:,}, got "
                                 f"{value!r}")
        return value

    def int_list(self, name: str) -> list[int] | None:
        """A list of integers (layer indices), or None when the field is absent."""
        value = self.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or any(isinstance(i, bool) or not isinstance(i, int) for i in value):
            raise ModelSpecError(f"{self.origin}: field '{name}' must be a list of integers, got {value!r}")
        return value
