"""Models: what one LLM is, read from the built-in catalogue or a Hugging Face config.json.

ModelSpec, exact parameter groups and counts, per-GPU weight and KV-cache bytes under TP/PP, and each engine's
TP divisibility rules. Imports only `tpplan.units` and `tpplan.errors`.
"""
