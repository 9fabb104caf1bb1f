"""Cost: pure functions of (ModelSpec, HardwareProfile, shape) -> seconds: rooflines of the step's kernels and
collective times. Imports `models`, `hardware`, `units`, `errors`; never torch, typer or rich.
"""
