"""What a change to a profile constant would do to `make fidelity`'s published sets, before anyone edits a profile:
the built-in profiles are loaded with the given efficiency fields overridden (all of them, or --only some), every
published row is planned again, and the sets' median |error|, signed median per TP and TP order agreement are
printed. Nothing is written: the README, benchmarks/results/ and the profiles stay as they are.

    .venv/bin/python benchmarks/fidelity_scan.py --set attention_decode_memory_fused=0.8
    .venv/bin/python benchmarks/fidelity_scan.py --set sustained_clock=0.85 --only dgx-h100,hgx-h200
    .venv/bin/python benchmarks/fidelity_scan.py --set decode_sequence_overhead_s="80 ns" --by hardware

Each KEY is a field of tpplan.hardware.profile.Efficiency (its Python name: seconds fields end in _s and take a
number of seconds or a quantity with a unit, "80 ns"; bytes fields take "4 GiB"). Without --set it prints the
sets as the profiles stand, the baseline to compare with. A scan is a measurement, not a fit: a constant changes in
a profile only with a physical reason and a source (DEVELOPERS.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from typing import Any

from tpplan.hardware.profile import Efficiency, HardwareProfile
from tpplan.units import parse_quantity


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs -> Efficiency field values; an unknown field or a value that is not a number (or, for a
    `_s` / `_bytes` field, a quantity of time / bytes) is refused with the field names that exist."""
    fields = {f.name: f for f in dataclasses.fields(Efficiency)}
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or key not in fields:
            raise SystemExit(f"--set {pair!r}: expected FIELD=VALUE with FIELD one of {', '.join(sorted(fields))}")
        if key.endswith("_s"):
            out[key] = parse_quantity(raw, kind="time", default_unit="s")
        elif key.endswith("_bytes"):
            out[key] = int(parse_quantity(raw, kind="bytes", default_unit="B"))
        else:
            try:
                out[key] = float(raw)
            except ValueError:
                raise SystemExit(f"--set {pair!r}: {raw!r} is not a number") from None
    return out


def overridden(profile: HardwareProfile, overrides: dict[str, Any], only: set[str] | None) -> HardwareProfile:
    """The profile with `overrides` applied to its efficiency (all profiles, or those named in `only`)."""
    if not overrides or (only is not None and profile.name not in only):
        return profile
    return dataclasses.replace(profile, efficiency=dataclasses.replace(profile.efficiency, **overrides))


def _install(overrides: dict[str, Any], only: set[str] | None) -> None:
    """Make every built-in profile the fidelity benchmark loads come back overridden."""
    from tpplan.hardware import loader

    plain = loader.load_builtin.__wrapped__
    loader.load_builtin = functools.cache(lambda name: overridden(plain(name), overrides, only))


def _line(F, rows: list[dict], by: str) -> str:
    s, o = F.error_stats(rows, by), F.order_agreement(rows)
    signed = " / ".join(f"{k} {float(v):+.1f}%" for k, v in s[f"signed_median_pct_by_{by}"].items())
    order = f"{o['agreement_pct']:.1f}% of {o['pairs']}" if o["agreement_pct"] is not None else "no pairs"
    return f"{s['rows']:5d} rows  {s['median_abs_error_pct']:5.2f}%  order {order}  signed by {by}: {signed}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="FIELD=VALUE",
                   help="an Efficiency field to override (repeatable)")
    p.add_argument("--only", help="comma-separated built-in profiles to override (default: all)")
    p.add_argument("--by", default="tp", choices=("tp", "hardware", "layout", "runtime"),
                   help="what the signed medians are grouped by")
    args = p.parse_args(argv)
    overrides = parse_overrides(args.sets)
    only = {n.strip() for n in args.only.split(",")} if args.only else None
    _install(overrides, only)
    import fidelity as F

    pub, _, _, _ = F.published_sets()
    sixteen = [r for r in pub if r["precision"] != "FP4"]
    sets = {"16-bit + FP8 (the issue-10 set)": sixteen,
            "  dense": [r for r in sixteen if not r.get("moe")],
            "  MoE": [r for r in sixteen if r.get("moe")],
            "FP4": [r for r in pub if r["precision"] == "FP4"],
            "all TensorRT-LLM rows": pub,
            "pipeline rows": [r for r in pub if r["pp"] > 1]}
    print("overrides:", ", ".join(f"{k}={v:g}" for k, v in overrides.items()) or "none",
          f"(profiles: {', '.join(sorted(only)) if only else 'all'})")
    for name, rows in sets.items():
        by = args.by if all(args.by in r for r in rows) else "tp"
        print(f"{name:34s} {_line(F, rows, by)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
