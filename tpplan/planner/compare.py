"""Two or more fixed layouts of one model side by side (`tpplan compare`), each evaluated like every candidate.

A layout is written `TP[xPP[xREPLICAS]][+epEP][+dpDP]`, case-insensitive, parts in any order after the first:
`8` (TP8), `4x2` (TP4 x PP2), `2x1x4` (TP2, PP1, 4 replicas), `8+ep8` (TP8 with the routed experts whole over the
8 GPUs), `1+dp8+ep8` (attention DP 8 x EP 8, attention TP 1: "DEP8"), `2x1x2+ep2`. `+epN` and `+dpN` are
recommend's `--ep N` and `--dp-attention N`; `tp4xpp2` and commas (`4,2`) also work.
"""

from __future__ import annotations

import re
from typing import Any

from tpplan.errors import LayoutError, TpplanError
from tpplan.planner.candidates import Candidate
from tpplan.planner.result import Plan
from tpplan.records import record

LAYOUT_GRAMMAR = "TP[xPP[xREPLICAS]][+epEP][+dpDP]"
LAYOUT_EXAMPLES = "8, 4x2, 2x1x4, 8+ep8, 1+dp8+ep8"
_BASE = re.compile(r"(?:tp)?(\d+)(?:[x,](?:pp)?(\d+))?(?:[x,](\d+))?", re.IGNORECASE | re.ASCII)
_MOE_PART = re.compile(r"(ep|dp)(\d+)", re.IGNORECASE | re.ASCII)
r"""ASCII digits only: `\d` alone also matches other scripts' digits ('٨' is int 8 to Python)."""


@record
class Layout:
    """One fixed serving layout, as recommend's `--tp --pp --replicas --ep --dp-attention` fix it."""

    tp: int
    """Tensor-parallel GPUs of attention (inside each attention-DP rank) and of the dense layers."""
    pp: int = 1
    """Pipeline stages."""
    replicas: int | None = None
    """None: as many replicas as the GPUs allow."""
    ep: int = 1
    """MoE: expert-parallel size, 1 (experts split over the stage's GPUs) or tp x dp_attention (experts whole)."""
    dp_attention: int = 1
    """MoE: attention data-parallel ranks of `tp` GPUs each (1: none)."""

    def text(self) -> str:
        """The layout in compare's grammar, shortest form: parse_layout(layout.text()) == layout."""
        out = str(self.tp)
        if self.pp > 1 or self.replicas is not None:
            out += f"x{self.pp}" + (f"x{self.replicas}" if self.replicas is not None else "")
        return out + (f"+dp{self.dp_attention}" if self.dp_attention > 1 else "") + (
            f"+ep{self.ep}" if self.ep > 1 else "")

    def flags(self) -> str:
        """The same layout as recommend's options, e.g. '--tp 1 --dp-attention 8 --ep 8'."""
        pairs = (("--tp", self.tp), ("--pp", self.pp if self.pp > 1 else None), ("--replicas", self.replicas),
                 ("--dp-attention", self.dp_attention if self.dp_attention > 1 else None),
                 ("--ep", self.ep if self.ep > 1 else None))
        return " ".join(f"{name} {value}" for name, value in pairs if value is not None)


def _malformed(text: str) -> TpplanError:
    return TpplanError(f"layout {text!r} is not {LAYOUT_GRAMMAR}; write e.g. {LAYOUT_EXAMPLES}")


def parse_layout(text: str) -> Layout:
    """'8' -> TP8; '4x2' -> TP4 x PP2; '2x1x4' -> TP2 x PP1 x 4 replicas; '8+ep8' -> TP8 with EP8; '1+dp8+ep8' ->
    attention DP 8 x EP 8 at TP1 (whitespace ignored; 'tp4xpp2' and commas also work). Every number is at least 1
    and each of +ep, +dp appears at most once; anything else is one TpplanError naming the text."""
    head, *parts = re.sub(r"\s+", "", text).split("+")
    base = _BASE.fullmatch(head)
    moe: dict[str, int] = {}
    for part in parts:
        m = _MOE_PART.fullmatch(part)
        if m is None or m.group(1).lower() in moe:
            raise _malformed(text)
        moe[m.group(1).lower()] = int(m.group(2))
    if base is None:
        raise _malformed(text)
    tp, pp, replicas = (int(g) if g else None for g in base.groups())
    if min(x for x in (tp, pp, replicas, *moe.values()) if x is not None) < 1:
        raise _malformed(text)
    return Layout(tp=tp, pp=pp or 1, replicas=replicas, ep=moe.get("ep", 1), dp_attention=moe.get("dp", 1))


def layout_of(c: Candidate) -> Layout:
    """A planned candidate as a compare layout (replicas spelled out), so a plan's best can be compared by hand."""
    return Layout(tp=c.tp, pp=c.pp, replicas=c.replicas, ep=c.ep, dp_attention=c.dp_attention)


@record(frozen=False)
class Comparison:
    plan: Plan
    """The plan of the first layout's call: workload, profile, and the best layout for reference."""
    layouts: list[Candidate]


def compare(model: Any, layouts: list[Layout | str], **options: Any) -> Comparison:
    """Evaluate each layout (a Layout, or its text in compare's grammar: '4x1x2', '1+dp8+ep8') with
    `recommend(model, tp=..., pp=..., replicas=..., ep=..., dp_attention=..., **options)`. A layout recommend refuses
    (EP on a dense model, an EP size the engines do not run, more GPUs than given) is one LayoutError that names the
    layout and the recommend options it stands for."""
    if isinstance(layouts, str | Layout) or not hasattr(layouts, "__len__"):
        raise TpplanError(f"layouts={layouts!r}: expected a list of layouts (Layout objects or texts such as "
                          f"{LAYOUT_EXAMPLES})")
    layouts = [_as_layout(lay) for lay in layouts]
    if len(layouts) < 2:
        raise TpplanError("compare needs at least two layouts, e.g. `tpplan compare -m llama-70b 8 4x1x2`")
    plans = [_plan_with(model, lay, options) for lay in layouts]
    return Comparison(plan=plans[0], layouts=[p.chosen for p in plans])


def _as_layout(lay: object) -> Layout:
    if isinstance(lay, Layout):
        return lay
    if isinstance(lay, str):
        return parse_layout(lay)
    raise TpplanError(f"layout {lay!r}: expected a Layout or a text in compare's grammar ({LAYOUT_EXAMPLES})")


def nothing_runs(cmp: Comparison) -> str | None:
    """The refusal when none of the compared layouts runs (`tpplan compare` exits 1 with it): each layout's reasons,
    then a layout that runs (the planner's best, in compare's grammar) or where to look when none does; None when at
    least one layout runs."""
    if any(c.feasible for c in cmp.layouts):
        return None
    why = "; ".join(f"{layout_of(c).text()}: {', '.join(c.reasons) or 'does not run'}" for c in cmp.layouts)
    best, w = cmp.plan.recommended, cmp.plan.workload
    fix = (f"compare a layout that runs, e.g. {layout_of(best).text()} (tpplan recommend's best with these options)"
           if best is not None else f"no layout runs on these {w.gpus} GPU(s); `tpplan recommend` with the same model "
           f"and options suggests what would")
    return f"none of the {len(cmp.layouts)} layouts compared runs ({why}); {fix}"


def _plan_with(model: Any, lay: Layout, options: dict[str, Any]) -> Plan:
    from tpplan.planner.plan import recommend

    try:
        return recommend(model, tp=lay.tp, pp=lay.pp, replicas=lay.replicas, ep=lay.ep,
                         dp_attention=lay.dp_attention, replan_suggestions=False, **options)
    except LayoutError as exc:
        raise LayoutError(f"layout {lay.text()!r} ({lay.flags()}): {exc}") from exc
