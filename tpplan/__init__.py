"""tpplan: plan the tensor-parallel degree for LLM serving and training, and check it on real GPUs.

    >>> import tpplan
    >>> plan = tpplan.recommend("llama-70b", gpus=8)          # a tpplan.Plan
    >>> plan.recommended.tp, plan.to_dict()["schema_version"]
    >>> print(plan.serve_command("vllm"))

`recommend`, `compare`, `Plan` are the real objects (same signature and docstring as in tpplan.planner),
loaded on first use (PEP 562) so that `import tpplan` stays fast and never imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tpplan._version import __version__

if TYPE_CHECKING:
    from tpplan.planner.compare import compare
    from tpplan.planner.plan import recommend
    from tpplan.planner.result import Plan

__all__ = ["Plan", "__version__", "compare", "recommend"]

_LAZY = {"recommend": "tpplan.planner.plan", "compare": "tpplan.planner.compare", "Plan": "tpplan.planner.result"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tpplan' has no attribute {name!r}")
