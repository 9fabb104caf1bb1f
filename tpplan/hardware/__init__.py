"""Hardware: HardwareProfile (GPU, links, collective parameters, efficiencies) and its YAML schema, loader,
writer and error lines. Imports only `tpplan.units` and `tpplan.errors`.
"""
