"""Built-in models: one JSON file per model (HF config fields plus name, aliases and sources).

Loaded on demand, never at import time.
"""
