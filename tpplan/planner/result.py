"""Plan: what `recommend` returns. Its own module so the explanation can read a plan's data without importing
the module that builds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tpplan.hardware.profile import HardwareProfile
from tpplan.models.spec import ModelSpec
from tpplan.planner.candidates import Candidate
from tpplan.planner.workload import Workload


@dataclass(slots=True, kw_only=True)
class Plan:
    model: ModelSpec
    profile: HardwareProfile
    workload: Workload
    candidates: list[Candidate]
    recommended: Candidate | None
    explanation: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    assumptions: dict[str, str] = field(default_factory=dict)
