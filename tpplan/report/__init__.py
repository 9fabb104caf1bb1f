"""Report: renderers that turn a Plan, a Measurement or a profile into a table, JSON, CSV. No arithmetic
beyond unit formatting. May import every layer below it; never `cli`.
"""
