"""The errors a user can fix. Each message names the input, the value, the rule and the fix.

The CLI turns any `TpplanError` into one line `Error: <message>` on stderr and exit code 1; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations


class TpplanError(Exception):
    """Base class of every expected, user-fixable failure."""


class ModelSpecError(TpplanError):
    """A model name, catalogue entry or config.json that cannot describe an architecture."""


class ProfileError(TpplanError):
    """A hardware profile that does not validate; carries one line per problem (`problems`, every one listed by
    `tpplan profiles validate`). The message is one line: the first problem, and how many more there are, with the
    command that lists them when the profile is a file (`path`)."""

    def __init__(self, problems: list[str] | str, *, path: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.path = path
        message = self.problems[0] if self.problems else ""
        if len(self.problems) > 1:
            import shlex

            hint = f"; run `tpplan profiles validate {shlex.quote(path)}` for all" if path else ""
            message += f" (and {len(self.problems) - 1} more{hint})"
        super().__init__(message)


class UnitError(TpplanError):
    """A quantity with a missing or unknown unit."""


class LayoutError(TpplanError):
    """A fixed layout (recommend's --tp/--pp/--replicas/--ep/--dp-attention/--etp, a compare layout) that the engine
    or the GPUs given cannot run as asked: refused before it is evaluated."""


class InfeasibleError(TpplanError):
    """A request that no candidate can satisfy (used where a plan cannot be rendered at all)."""


class MeasurementError(TpplanError):
    """A measurement run that failed: a rank died, timed out, or returned a wrong result."""


class OutputExistsError(TpplanError):
    """An output file exists and --force was not given."""


class TpplanWarning(UserWarning):
    """Not an error, issued with warnings.warn: the CLI prints each as one `warning: ...` line on stderr, once."""


class ProfileWarning(TpplanWarning):
    """Not an error: a user profile that loads but looks like a classic mistake (tpplan.hardware.lint), issued with
    warnings.warn; the CLI prints each as one `warning: FILE:LINE: KEY: MESSAGE` line on stderr."""


class MeasureWarning(TpplanWarning):
    """Not an error: a `tpplan measure` setting that makes its timings less telling (more CPU ranks than cores),
    said before the run starts."""
