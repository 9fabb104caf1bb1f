"""Planner: the workload, candidate layouts with feasibility and reasons, ranking, explanation, training mode,
the vectorised sweep and engine serve commands. Imports `cost`, `models`, `hardware`, `units`, `errors`.
"""
