"""Render `tpplan profiles list|show|validate`."""

from __future__ import annotations

import dataclasses
from typing import Any

from tpplan.hardware.profile import HardwareProfile
from tpplan.report.output import OutputFormat, emit_csv, emit_json, emit_rows, note, stdout_console
from tpplan.report.text import Column, list_table_lines, write_lines
from tpplan.units import flops_to_tflops, format_bandwidth, format_bytes, format_seconds, s_to_us


def list_row(p: HardwareProfile, location: str, duplicate_of: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"name": p.name, "gpu": p.gpu.name, "gpus_per_node": p.gpus_per_node, "nodes": p.nodes,
            "nvlink_domain_size": p.nvlink_domain_size, "link": p.intra_domain_link.kind,
            "link_bandwidth_bytes_per_s": p.intra_domain_link.bandwidth_bytes_per_s,
            "network": p.network.kind if p.network else None, "location": location,
            "description": p.description, "valid": True, "duplicate_of": _duplicate(p.name, location, duplicate_of)}


def warning_row(name: str, location: str, problems: list[str], duplicate_of: tuple[str, ...] = ()) -> dict[str, Any]:
    """A profile file that does not load: listed with its first problem instead of failing the whole listing."""
    note(f"warning: {problems[0] if problems else location + ': invalid profile'}")
    return {"name": name, "gpu": None, "gpus_per_node": None, "nodes": None, "nvlink_domain_size": None, "link": None,
            "link_bandwidth_bytes_per_s": None, "network": None, "location": location,
            "description": "INVALID: " + (problems[0] if problems else "does not load"), "valid": False,
            "duplicate_of": _duplicate(name, location, duplicate_of)}


def _duplicate(name: str, location: str, others: tuple[str, ...]) -> list[str]:
    """The other files listed under `name` (a warning line on stderr for each such file); [] when none."""
    if others:
        note(f"warning: {location}: profile name {name!r} is also declared by {', '.join(others)}; "
             f"`--hardware {name}` is refused until one is renamed")
    return list(others)


NBSP = "\u00a0"
"""Keeps a number with its unit when a cell wraps (tpplan.report.text.wrap)."""
_LIST_COLUMNS = (Column(header="name", priority=0, align="<"), Column(header="GPU", priority=1, align="<", wrap=True),
                 Column(header="GPUs", priority=2, align="<", wrap=True),
                 Column(header="NVLink domain", priority=5, align="<"),
                 Column(header="link", priority=3, align="<", wrap=True),
                 Column(header="network", priority=6, align="<"),
                 Column(header="source", priority=4, align="<", wrap=True))
"""The name is what `--hardware` takes: never cut (kept whole); the other columns wrap between words or give way."""


def _list_cells(r: dict[str, Any]) -> list[str]:
    if r.get("valid") is False:
        return [r["name"], "INVALID (see warning)", "-", "-", "-", "-", _where(r)]
    gpus = f"{r['gpus_per_node']}" + (f" x {r['nodes']} nodes" if r["nodes"] > 1 else "")
    return [r["name"], r["gpu"], gpus, str(r["nvlink_domain_size"]),
            f"{r['link']} {format_bandwidth(r['link_bandwidth_bytes_per_s']).replace(' ', NBSP)}", r["network"] or "-",
            _where(r)]


def _where(r: dict[str, Any]) -> str:
    return r["location"] + (" (DUPLICATE name, see warning)" if r.get("duplicate_of") else "")


def render_profiles_list(rows: list[dict[str, Any]], fmt: OutputFormat) -> None:
    if emit_rows(rows, fmt):
        return
    write_lines(list_table_lines("Hardware profiles (TPPLAN_PROFILE_PATH first, then built-in)", _LIST_COLUMNS,
                                 [_list_cells(r) for r in rows]))


def profile_json(p: HardwareProfile) -> dict[str, Any]:
    return dataclasses.asdict(p)


def render_profile_show(p: HardwareProfile, fmt: OutputFormat) -> None:
    if fmt is OutputFormat.json:
        return emit_json(profile_json(p))
    rows = _flat_rows(p)
    if fmt is OutputFormat.csv:
        return emit_csv([{"key": k, "value": v, "source": s} for k, v, s in rows])
    from rich.table import Table

    t = Table(title=f"{p.name}: {p.description}  ({p.origin})")
    for col in ("key", "value", "source"):
        t.add_column(col, overflow="fold")
    for k, v, s in rows:
        t.add_row(k, v, s)
    stdout_console().print(t)


def _flat_rows(p: HardwareProfile) -> list[tuple[str, str, str]]:
    src = p.sources
    g = p.gpu
    rows = [("gpu.name", g.name, src.get("gpu", "")), ("gpu.memory", format_bytes(g.memory_bytes), ""),
            ("gpu.memory_bandwidth", format_bandwidth(g.memory_bandwidth_bytes_per_s), "")]
    rows += [(f"gpu.peak_flops.{k}", f"{flops_to_tflops(v):.1f} TFLOP/s (dense)", "")
             for k, v in g.peak_flops_per_s.items()]
    rows += [("node.gpus_per_node", str(p.gpus_per_node), src.get("node", "")), ("nodes", str(p.nodes), ""),
             ("node.nvlink_domain_size", str(p.nvlink_domain_size), ""),
             *([("node.gpus_per_host", str(p.gpus_per_host), "the hosts a node spans: --emit's commands")]
               if p.gpus_per_host else []),
             ("node.intra_domain_link", f"{p.intra_domain_link.kind} "
              f"{format_bandwidth(p.intra_domain_link.bandwidth_bytes_per_s)} per GPU per direction", ""),
             ("node.inter_domain_link", f"{p.inter_domain_link.kind} "
              f"{format_bandwidth(p.inter_domain_link.bandwidth_bytes_per_s)} per GPU per direction", "")]
    if p.network:
        rows.append(("network", f"{p.network.kind} {format_bandwidth(p.network.bandwidth_bytes_per_s)} per GPU, "
                                f"latency {format_seconds(p.network.latency_s)}", ""))
    for tier, protos in p.collectives.items():
        note_row = "simple" if "simple" in protos else next(iter(protos), None)
        for name, pp in protos.items():
            rows.append((f"collectives.{tier}.{name}", f"base {s_to_us(pp.base_latency_s):.1f} us, hop "
                         f"{s_to_us(pp.hop_latency_s):.1f} us, busbw {format_bandwidth(pp.busbw_bytes_per_s)}",
                         _tier_source(p, tier) if name == note_row else ""))
    e = p.efficiency
    rows += [("efficiency.matmul", f"{e.matmul:.2f}", src.get("efficiency", "")),
             ("efficiency.memory", f"{e.memory:.2f}", ""),
             ("efficiency.runtime_reserve", format_bytes(e.runtime_reserve_bytes), ""),
             ("efficiency.step_overhead", format_seconds(e.step_overhead_s), "")]
    rows += _kernel_rows(p)
    if p.price_per_gpu_hour:
        rows.append(("price_per_gpu_hour", f"{p.price_per_gpu_hour:.2f}", src.get("price", "")))
    return rows


def _kernel_rows(p: HardwareProfile) -> list[tuple[str, str, str]]:
    """The kernel constants of the cost model (tpplan.cost.kernels), each marked with the defaults file when the
    profile leaves it out (HardwareProfile.defaulted)."""
    from tpplan.hardware.loader import DEFAULTS_FILES

    e, defaulted = p.efficiency, set(p.defaulted.get("kernels", ()))
    values = {"matmul_fp8": f"{e.matmul_fp8:.2f} of the 8-bit peak",
              "matmul_fp4": None if e.matmul_fp4 is None else f"{e.matmul_fp4:.2f} of the 4-bit peak",
              "matmul_epilogue_k": f"{e.matmul_epilogue_k:g} K-steps per output (16-bit GEMMs)",
              "matmul_epilogue_k_fp8": f"{e.matmul_epilogue_k_fp8:g} K-steps per output (8-bit GEMMs)",
              "kernel_overhead": format_seconds(e.kernel_overhead_s),
              "attention_decode_memory": f"{e.attention_decode_memory:.2f} of HBM bandwidth",
              "attention_decode_memory_fused": None if e.attention_decode_memory_fused is None
              else f"{e.attention_decode_memory_fused:.2f} of HBM bandwidth (engines' fused kernels)",
              "decode_sequence_overhead": f"{format_seconds(e.decode_sequence_overhead_s)} per sequence per layer",
              "attention_prefill_matmul": f"{e.attention_prefill_matmul:.2f} of the 16-bit peak",
              "attention_prefill_matmul_native": None if e.attention_prefill_matmul_native is None
              else f"{e.attention_prefill_matmul_native:.2f} of the 16-bit peak",
              "moe_expert_fixed_tokens": f"{e.moe_expert_fixed_tokens:g} tokens per expert",
              "sustained_clock": f"{e.sustained_clock:.2f} of the burst clock",
              "pipeline_sequence_overhead": format_seconds(e.pipeline_sequence_overhead_s)}
    return [(f"efficiency.{k}", v, DEFAULTS_FILES["kernels"] if k in defaulted else "")
            for k, v in values.items() if v is not None]


def _tier_source(p: HardwareProfile, tier: str) -> str:
    """Where one collective tier's numbers come from: `source: {collectives.TIER: ...}`, else the profile's
    `collectives` note when the profile gives that tier, else the defaults file the tier was derived from."""
    from tpplan.hardware.loader import DEFAULTS_FILES

    if f"collectives.{tier}" in p.sources:
        return p.sources[f"collectives.{tier}"]
    if tier in p.defaulted.get("collectives", ()):
        return f"derived from the link with {DEFAULTS_FILES['collectives']}"
    return p.sources.get("collectives", "")


def validation_json(files: list[str], found: list[Any]) -> dict[str, Any]:
    """`profiles validate -f json`: ok overall and per file, and every problem and warning with its file, line, key,
    severity and message (the text lines' parts)."""
    bad = {p.file for p in found if p.severity == "error"}
    return {"ok": not bad, "files": [{"file": f, "ok": f not in bad} for f in files],
            "problems": [{"file": p.file, "line": p.line, "key": p.key, "severity": p.severity, "message": p.message,
                          "ok": p.severity != "error"} for p in found]}


def render_validation(files: list[str], found: list[Any], fmt: OutputFormat) -> None:
    """Text (the default): one line per problem on stderr, then `N profile(s) valid` on stdout when none is an
    error; json: validation_json on stdout; csv / markdown: one row per problem."""
    if fmt is OutputFormat.json:
        return emit_json(validation_json(files, found))
    if fmt in (OutputFormat.csv, OutputFormat.markdown):
        emit_rows(validation_json(files, found)["problems"], fmt)
        return None
    for p in found:
        note(str(p))
    warnings = sum(p.severity == "warning" for p in found)
    if not any(p.severity == "error" for p in found):
        write_lines([f"{len(files)} profile(s) valid" + (f", {warnings} warning(s)" if warnings else "")])
    return None
