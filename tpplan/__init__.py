"""tpplan: plan the tensor-parallel degree for LLM serving and training, and check it on real GPUs.

Nothing heavy is imported here: `import tpplan` must stay fast and must not import torch.
"""

from tpplan._version import __version__

__all__ = ["__version__", "recommend"]


def recommend(*args, **kwargs):
    """Plan a model on hardware; see `tpplan.planner.plan.recommend` (imported lazily)."""
    from tpplan.planner.plan import recommend as _recommend

    return _recommend(*args, **kwargs)
