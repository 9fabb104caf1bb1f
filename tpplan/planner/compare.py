"""Two or more fixed layouts of one model side by side (`tpplan compare`), each evaluated like every candidate."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tpplan.errors import TpplanError
from tpplan.planner.candidates import Candidate
from tpplan.planner.result import Plan

_LAYOUT = re.compile(r"^\s*(?:tp)?(\d+)\s*(?:[x,]\s*(?:pp)?(\d+))?\s*(?:[x,]\s*(\d+))?\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    tp: int
    pp: int = 1
    replicas: int | None = None
    """None: as many replicas as the GPUs allow."""


def parse_layout(text: str) -> Layout:
    """'8' -> TP8; '4x2' -> TP4 x PP2; '2x1x4' -> TP2 x PP1 x 4 replicas ('tp4xpp2' and commas also work)."""
    m = _LAYOUT.match(text)
    if not m or int(m.group(1)) < 1 or (m.group(2) and int(m.group(2)) < 1) or (m.group(3) and int(m.group(3)) < 1):
        raise TpplanError(f"layout {text!r} is not TP[xPP[xREPLICAS]]; write e.g. 8, 4x2 or 2x1x4")
    return Layout(tp=int(m.group(1)), pp=int(m.group(2) or 1), replicas=int(m.group(3)) if m.group(3) else None)


@dataclass(slots=True, kw_only=True)
class Comparison:
    plan: Plan
    """The plan of the first layout's call: workload, profile, and the best layout for reference."""
    layouts: list[Candidate]


def compare(model: Any, layouts: list[Layout], **options: Any) -> Comparison:
    """Evaluate each layout with `recommend(model, tp=..., pp=..., replicas=..., **options)`."""
    from tpplan.planner.plan import recommend

    if len(layouts) < 2:
        raise TpplanError("compare needs at least two layouts, e.g. `tpplan compare -m llama-70b 8 4x1x2`")
    plans = [recommend(model, tp=lay.tp, pp=lay.pp, replicas=lay.replicas, replan_suggestions=False, **options)
             for lay in layouts]
    return Comparison(plan=plans[0], layouts=[p.chosen for p in plans])
