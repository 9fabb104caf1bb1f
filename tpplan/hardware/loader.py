"""Load, validate and resolve hardware profiles.

Resolution order for `--hardware X`: an existing path; then the file on TPPLAN_PROFILE_PATH named `X.yaml` or
declaring `name: X` (two such files are an error naming both, never a silent pick); then the built-in profiles. YAML
is read with the safe loader only (no tags, no object construction, no includes), and a key given twice in one
mapping is an error. A user file's lint warnings (tpplan.hardware.lint) are issued as ProfileWarning when it is
resolved; built-in profiles never warn.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tpplan.errors import ProfileError, ProfileWarning
from tpplan.files import package_dir
from tpplan.hardware.profile import Efficiency, GpuSpec, HardwareProfile, LinkSpec, ProtocolParams
from tpplan.hardware.yaml_errors import UniqueKeySafeLoader, pydantic_problems, yaml_problem
from tpplan.records import record
from tpplan.units import US, GiB, bytes_to_gib, parse_quantity

if TYPE_CHECKING:
    from tpplan.hardware.kernel_table import KernelTable

DEFAULT_PROFILE = "dgx-h100"
_LOADER = UniqueKeySafeLoader
"""Every YAML tpplan reads (profiles, their measured kernel tables, the defaults): safe, and a key given twice in
one mapping is an error."""


@cache
def collective_defaults() -> dict[str, Any]:
    """Collective tiers a profile leaves out (hardware_profiles/defaults/collectives.yaml, sources inside)."""
    text = package_dir("tpplan.hardware_profiles").joinpath("defaults", "collectives.yaml").read_text(encoding="utf-8")
    return yaml.load(text, Loader=_LOADER)


@cache
def kernel_defaults() -> dict[str, Any]:
    """Kernel constants a profile may leave out (hardware_profiles/defaults/kernels.yaml, sources inside)."""
    text = package_dir("tpplan.hardware_profiles").joinpath("defaults", "kernels.yaml").read_text(encoding="utf-8")
    return yaml.load(text, Loader=_LOADER)


DEFAULTS_FILES = {"kernels": "hardware_profiles/defaults/kernels.yaml",
                  "collectives": "hardware_profiles/defaults/collectives.yaml"}
"""The files a profile's left-out values come from (HardwareProfile.defaulted), as the repository names them."""


def defaults_source(kind: str) -> str:
    """The `source` line of hardware_profiles/defaults/{kind}.yaml (the full citations are its comments)."""
    return str((kernel_defaults() if kind == "kernels" else collective_defaults()).get("source", ""))


def _defaulted(d: dict[str, Any], tiers: dict[str, dict[str, ProtocolParams]]) -> dict[str, tuple[str, ...]]:
    """Which values of a profile dict come from the defaults files: the kernel constants its efficiency section
    leaves out, and the collective tiers it gives no parameters for."""
    e, given = d["efficiency"], d.get("collectives") or {}
    out = {"kernels": tuple(k for k in kernel_defaults() if k != "source" and e.get(k) is None
                            and not (k == "attention_decode_memory_fused" and _decode_share_stated_alone(e))),
           "collectives": tuple(t for t in tiers if not given.get(t))}
    return {k: v for k, v in out.items() if v}


def _decode_share_stated_alone(e: dict[str, Any]) -> bool:
    """The efficiency section states attention_decode_memory but not attention_decode_memory_fused: the stated share
    then prices the engines' decode attention too (as before the fused share existed), not the defaults file's."""
    return e.get("attention_decode_memory") is not None and e.get("attention_decode_memory_fused") is None


def _efficiency(e: dict[str, Any]) -> Efficiency:
    k = {**kernel_defaults(), **{key: v for key, v in e.items() if v is not None}}
    if _decode_share_stated_alone(e):
        k["attention_decode_memory_fused"] = None
    return Efficiency(matmul=float(e["matmul"]), memory=float(e["memory"]),
                      runtime_reserve_bytes=int(_q(e["runtime_reserve"], "bytes", "GiB")),
                      step_overhead_s=_q(e["step_overhead"], "time", "us"),
                      matmul_fp8=float(k["matmul_fp8"]),
                      kernel_overhead_s=_q(k["kernel_overhead"], "time", "us"),
                      attention_decode_memory=float(k["attention_decode_memory"]),
                      attention_decode_memory_fused=(float(k["attention_decode_memory_fused"])
                                                     if k.get("attention_decode_memory_fused") is not None else None),
                      decode_sequence_overhead_s=_q(k["decode_sequence_overhead"], "time", "us"),
                      attention_prefill_matmul=float(k["attention_prefill_matmul"]),
                      moe_expert_fixed_tokens=float(k["moe_expert_fixed_tokens"]),
                      matmul_epilogue_k=float(k["matmul_epilogue_k"]),
                      matmul_epilogue_k_fp8=float(k["matmul_epilogue_k_fp8"]),
                      sustained_clock=float(k["sustained_clock"]),
                      pipeline_sequence_overhead_s=_q(k["pipeline_sequence_overhead"], "time", "us"),
                      matmul_fp4=float(k["matmul_fp4"]) if k.get("matmul_fp4") is not None else None,
                      attention_prefill_matmul_native=(float(k["attention_prefill_matmul_native"])
                                                       if k.get("attention_prefill_matmul_native") is not None
                                                       else None))


def _default_tier(tier: str, link: LinkSpec) -> dict[str, ProtocolParams]:
    d = collective_defaults()
    return {p: ProtocolParams(base_latency_s=d["base_latency_us"][p] * US + link.latency_s,
                              hop_latency_s=d["hop_latency_us"][tier][p] * US,
                              busbw_bytes_per_s=link.bandwidth_bytes_per_s * d["busbw_fraction_of_link"][p])
            for p in ("ll", "ll128", "simple")}


def _q(value: Any, kind: str, unit: str) -> float:
    return parse_quantity(value, kind=kind, default_unit=unit)


def _link(x: dict[str, Any]) -> LinkSpec:
    return LinkSpec(kind=x["kind"], bandwidth_bytes_per_s=_q(x["bandwidth"], "bandwidth", "GB/s"),
                    latency_s=_q(x.get("latency") or 0, "time", "us"))


SIXTEEN_BIT = ("bf16", "fp16")
"""The dtypes whose peak 16-bit kernels (and dtypes a GPU lists no rate for) run at: a profile must state one."""


def _cross_field_problems(d: dict[str, Any]) -> list[tuple[tuple[str, ...], str, Any, str]]:
    node, out = d["node"], []
    peaks = d["gpu"]["peak_flops"]
    if not any(k in peaks for k in SIXTEEN_BIT):
        out.append((("gpu", "peak_flops"), "no 16-bit peak", sorted(peaks),
                    "a bf16 (or fp16) key: the dense 16-bit matmul peak from the datasheet (never taken from another "
                    "dtype)"))
    if node["nvlink_domain_size"] > node["gpus_per_node"]:
        out.append((("node", "nvlink_domain_size"), "larger than gpus_per_node", node["nvlink_domain_size"],
                    f"at most {node['gpus_per_node']} (an NVLink domain over several hosts is one node: "
                    f"gpus_per_node {node['nvlink_domain_size']} with gpus_per_host {node['gpus_per_node']}, as "
                    f"gb200-nvl72)"))
    elif node["gpus_per_node"] % node["nvlink_domain_size"]:
        out.append((("node", "nvlink_domain_size"), "does not divide gpus_per_node", node["nvlink_domain_size"],
                    f"a divisor of {node['gpus_per_node']}"))
    host = node.get("gpus_per_host")
    if host is not None and node["gpus_per_node"] % host:
        out.append((("node", "gpus_per_host"), "does not divide gpus_per_node", host,
                    f"a divisor of {node['gpus_per_node']}"))
    if d.get("nodes", 1) > 1 and d.get("network") is None:
        out.append((("nodes",), "several nodes but no network section", d["nodes"],
                    "add network: {kind, bandwidth_per_gpu, latency}"))
    memory = _q(d["gpu"]["memory"], "bytes", "GiB")
    reserve = _q(d["efficiency"]["runtime_reserve"], "bytes", "GiB")
    if GiB <= memory <= reserve:  # nothing left for weights or KV cache (a memory below 1 GiB is bounds' problem)
        out.append((("efficiency", "runtime_reserve"), "not below gpu.memory", d["efficiency"]["runtime_reserve"],
                    f"the runtime buffers' size, a few GiB and well below the GPU's {bytes_to_gib(memory):.0f} GiB"))
    return out


def _tiers(d: dict[str, Any], links: dict[str, LinkSpec | None]) -> dict[str, dict[str, ProtocolParams]]:
    given_all = d.get("collectives") or {}
    tiers: dict[str, dict[str, ProtocolParams]] = {}
    for tier, link in links.items():
        given = given_all.get(tier)
        if given:
            tiers[tier] = {name: _protocol(v) for name, v in given.items() if v}
        elif link is not None:
            tiers[tier] = _default_tier(tier, link)
    return tiers


def _protocol(v: dict[str, Any]) -> ProtocolParams:
    table = sorted((int(k), _q(b, "bandwidth", "GB/s")) for k, b in (v.get("busbw_by_group_size") or {}).items())
    return ProtocolParams(base_latency_s=_q(v["base_latency"], "time", "us"),
                          hop_latency_s=_q(v["hop_latency"], "time", "us"),
                          busbw_bytes_per_s=_q(v["busbw"], "bandwidth", "GB/s"), busbw_by_group_size=tuple(table))


def profile_from_dict(d: dict[str, Any], *, origin: str) -> HardwareProfile:
    """Convert a profile dict (already validated, or a trusted built-in) to base units."""
    g, node, e = d["gpu"], d["node"], d["efficiency"]
    intra, inter = _link(node["intra_domain_link"]), _link(node["inter_domain_link"])
    net = d.get("network")
    network = (LinkSpec(kind=net["kind"], bandwidth_bytes_per_s=_q(net["bandwidth_per_gpu"], "bandwidth", "GB/s"),
                        latency_s=_q(net["latency"], "time", "us")) if net else None)
    return HardwareProfile(
        name=d["name"], description=d.get("description", ""),
        gpu=GpuSpec(name=g["name"], memory_bytes=int(_q(g["memory"], "bytes", "GiB")),
                    memory_bandwidth_bytes_per_s=_q(g["memory_bandwidth"], "bandwidth", "GB/s"),
                    peak_flops_per_s={k: _q(v, "flops", "TFLOP/s") for k, v in g["peak_flops"].items()}),
        gpus_per_node=node["gpus_per_node"], nvlink_domain_size=node["nvlink_domain_size"],
        gpus_per_host=node.get("gpus_per_host") or 0, intra_domain_link=intra,
        inter_domain_link=inter, network=network, nodes=d.get("nodes", 1),
        collectives=(tiers := _tiers(d, {"nvlink": intra, "pcie": inter, "network": network})),
        efficiency=_efficiency(e), defaulted=_defaulted(d, tiers),
        price_per_gpu_hour=d.get("price_per_gpu_hour"), sources=dict(d.get("source") or {}), origin=origin,
        kernel_table=_kernel_table(d.get("kernel_table")))


def _kernel_table(t: dict[str, Any] | None) -> KernelTable | None:
    """The optional measured kernel table (tpplan.hardware.kernel_table), times in seconds."""
    if not t:
        return None
    from tpplan.hardware.kernel_table import AttentionCurve, KernelTable, MatmulCurve  # only profiles that have one

    def times(xs: list[Any]) -> tuple[float, ...]:
        return tuple(_q(x, "time", "us") for x in xs)

    return KernelTable(
        source=t["source"], kernel_fixed_time_s=_q(t.get("kernel_fixed_time") or 0, "time", "us"),
        layer_overhead_s={mode: _q(v, "time", "us") for mode, v in (t.get("layer_overhead") or {}).items()},
        matmul=tuple(MatmulCurve(n=c["n"], k=c["k"], dtype=c["dtype"], tokens=tuple(c["tokens"]),
                                 time_s=times(c["time"])) for c in t.get("matmul") or ()),
        attention=tuple(AttentionCurve(mode=c["mode"], heads=c["heads"], kv_heads=c["kv_heads"],
                                       head_dim=c["head_dim"], batch=c.get("batch", 1), dtype=c["dtype"],
                                       lengths=tuple(c["length"]), time_s=times(c["time"]))
                        for c in t.get("attention") or ()))


def _validate(text: str, data: Any, origin: str) -> None:
    """pydantic validation of the raw dict; raises ProfileError with every problem."""
    from pydantic import ValidationError

    from tpplan.hardware.schema import ProfileIn
    from tpplan.hardware.yaml_errors import node_line

    if not isinstance(data, dict):
        got = "an empty file" if data is None else type(data).__name__
        raise ProfileError([f"{origin}:1: (root): a profile must be a mapping (got {got}); expected keys "
                            f"schema_version, name, gpu, node, efficiency"])
    try:
        ProfileIn.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(pydantic_problems(exc, text=text, origin=origin, model=ProfileIn)) from None
    from tpplan.hardware.bounds import bound_problems

    cross = bound_problems(data) + _cross_field_problems(data)
    if cross:
        raise ProfileError([f"{origin}:{node_line(text, loc)}: {'.'.join(loc)}: {what} (got {value!r}); expected {fix}"
                            for loc, what, value, fix in cross])


def load_profile_text(text: str, *, origin: str, validate: bool = True) -> HardwareProfile:
    """Parse one profile; with `validate` (every user file) ProfileError carries every problem, one line each.

    Built-in profiles skip pydantic (130 ms of imports) because the test suite validates them.
    """
    try:
        data = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise ProfileError([yaml_problem(exc, origin=origin, text=text)]) from None
    if validate:
        _validate(text, data, origin)
    return profile_from_dict(data, origin=origin)


def load_profile_file(path: Path) -> HardwareProfile:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError([f"{path}:1: (file): cannot read ({exc.__class__.__name__}: {exc}); expected a readable "
                            f"UTF-8 YAML file"]) from None
    try:
        return load_profile_text(text, origin=str(path))
    except ProfileError as exc:  # the same problems, and the message names the command that lists them all
        raise ProfileError(exc.problems, path=str(path)) from None


def _search_dirs() -> list[Path]:
    env = os.environ.get("TPPLAN_PROFILE_PATH", "")
    return [Path(p) for p in env.split(os.pathsep) if p]


def _builtin_dir() -> Path:
    return package_dir("tpplan.hardware_profiles")


def builtin_names() -> list[str]:
    return sorted(f.name[:-5] for f in _builtin_dir().iterdir() if f.name.endswith(".yaml"))


@record(kw_only=False)
class ProfileRef:
    name: str
    location: str
    """'built-in' or the file path."""
    duplicate_of: tuple[str, ...] = ()
    """The other files on TPPLAN_PROFILE_PATH listed under the same name (`--hardware NAME` is refused while any)."""


def _declared_name(path: Path) -> str | None:
    """The `name:` a profile file declares, or None when the file cannot be read as a mapping with a name."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else None


def _user_files() -> list[Path]:
    """Every profile file on TPPLAN_PROFILE_PATH, in search order; a folder given twice is searched once."""
    files = [f for d in _search_dirs() if d.is_dir() for f in sorted([*d.glob("*.yaml"), *d.glob("*.yml")])]
    first: dict[Path, Path] = {}
    for f in files:  # each file at its first place on the path
        first.setdefault(f.resolve(), f)
    return list(first.values())


def _user_refs() -> list[ProfileRef]:
    """One ref per user file, under its declared `name:` (its file stem when it has none or cannot be read), each
    with the other files listed under the same name."""
    named = [(_declared_name(f) or f.stem, str(f)) for f in _user_files()]
    return [ProfileRef(name, where, tuple(w for n, w in named if n == name and w != where)) for name, where in named]


def available_profiles() -> list[ProfileRef]:
    """Every profile file on TPPLAN_PROFILE_PATH (first; two files under one name are both listed, each naming the
    other), then the built-in profiles that no user file shadows."""
    refs = _user_refs()
    shadowed = {r.name for r in refs} | {Path(r.location).stem for r in refs}  # as resolve_profile matches them
    return refs + [ProfileRef(n, "built-in") for n in builtin_names() if n not in shadowed]


def duplicate_problem(name: str, paths: list[str]) -> str:
    """The refusal of a profile name that several files on TPPLAN_PROFILE_PATH answer to."""
    return (f"hardware profile {name!r} is ambiguous: {' and '.join(paths)} on TPPLAN_PROFILE_PATH both answer to "
            f"that name; give one of them another `name:` (and file name), take it off TPPLAN_PROFILE_PATH, or pass "
            f"the file's path to --hardware")


def try_load_ref(ref: ProfileRef) -> tuple[HardwareProfile | None, list[str]]:
    """(profile, []) or (None, problems): one broken file on TPPLAN_PROFILE_PATH must not break a listing."""
    try:
        return load_ref(ref), []
    except ProfileError as exc:
        return None, list(exc.problems)


def load_ref(ref: ProfileRef) -> HardwareProfile:
    return load_builtin(ref.name) if ref.location == "built-in" else load_profile_file(Path(ref.location))


def resolve_profile(name_or_path: str | None) -> tuple[HardwareProfile, bool]:
    """(profile, assumed): `assumed` is True when no profile was named and the default was used (resolved as its
    name is, so a file on TPPLAN_PROFILE_PATH that shadows it is used as `--hardware dgx-h100` would use it)."""
    if name_or_path is None:
        return resolve_profile(DEFAULT_PROFILE)[0], True
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ProfileError([f"{path}: no such profile file; pass an existing YAML file or a profile name "
                                f"(see `tpplan profiles list`)"])
        return _load_user_file(path), False
    # a user profile answers to its file stem (NAME.yaml) and to the name it declares; two files that answer to the
    # same name are refused rather than one chosen in silence
    files = [f for f in _user_files() if (f.stem == name_or_path and f.suffix == ".yaml")
             or _declared_name(f) == name_or_path]
    if len(files) > 1:
        raise ProfileError([duplicate_problem(name_or_path, [str(f) for f in files])])
    if files:
        return _load_user_file(files[0]), False
    if name_or_path in builtin_names():
        return load_builtin(name_or_path), False
    import difflib

    names = list(dict.fromkeys(r.name for r in available_profiles()))
    close = difflib.get_close_matches(name_or_path, names, n=3, cutoff=0.4)
    hint = f"closest: {', '.join(close)}" if close else f"available: {', '.join(names)}"
    raise ProfileError([f"unknown hardware profile {name_or_path!r}; {hint}; or pass a path to a YAML profile"])


@cache
def load_builtin(name: str) -> HardwareProfile:
    text = _builtin_dir().joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return load_profile_text(text, origin=f"built-in:{name}", validate=False)


@record
class ProfileProblem:
    """One line of `tpplan profiles validate`: `file:line: key: message` (a warning's message starts `warning: `)."""

    file: str
    line: int | None
    """1-based line of the offending key (its parent's for a missing key); None when the text gives none."""
    key: str
    """Dotted key path, or (file) / (root) for the file as a whole."""
    message: str
    severity: str
    """error (the profile is invalid) or warning (valid, but looks like a classic mistake)."""

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        warning = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}: {self.key}: {warning}{self.message}"


def _problem(text: str, *, file: str) -> ProfileProblem:
    """A ProfileError line `file:line: key: message` split into its parts (kept whole when it has another form)."""
    line, _, rest = text.removeprefix(f"{file}:").partition(": ")
    key, _, message = rest.partition(": ")
    if not text.startswith(f"{file}:") or not line.isdigit() or not message:
        return ProfileProblem(file=file, line=None, key="", message=text, severity="error")
    return ProfileProblem(file=file, line=int(line), key=key, message=message, severity="error")


def check_files(paths: list[Path]) -> list[ProfileProblem]:
    """Every problem (severity error: the profile is invalid) and warning (a value that validates but looks like a
    classic mistake, tpplan.hardware.lint) over `paths`, file by file."""
    found: list[ProfileProblem] = []
    builtins = [load_builtin(n) for n in builtin_names()]
    for path in paths:
        try:
            profile = load_profile_file(path)
        except ProfileError as exc:
            found += [_problem(line, file=str(path)) for line in exc.problems]
            continue
        found += lint_warnings(path, profile, builtins)
    return found


def lint_warnings(path: Path, profile: HardwareProfile,
                  builtins: list[HardwareProfile] | None = None) -> list[ProfileProblem]:
    """The warnings (tpplan.hardware.lint) on a user profile file that loaded as `profile`."""
    from tpplan.hardware.lint import lint
    from tpplan.hardware.yaml_errors import node_line

    builtins = [load_builtin(n) for n in builtin_names()] if builtins is None else builtins
    text = path.read_text(encoding="utf-8")
    data = yaml.load(text, Loader=_LOADER)
    found = lint(profile, data, builtins, kernel_defaults=(kernel_defaults(), DEFAULTS_FILES["kernels"]))
    return [ProfileProblem(file=str(path), line=node_line(text, loc), key=".".join(loc), message=msg,
                           severity="warning") for loc, msg in found]


def _load_user_file(path: Path) -> HardwareProfile:
    """A user profile, its lint warnings issued as ProfileWarning (built-in profiles, checked by the tests, never
    warn)."""
    import warnings

    profile = load_profile_file(path)
    for w in lint_warnings(path, profile):
        warnings.warn(ProfileWarning(f"{w.file}:{w.line}: {w.key}: {w.message}" if w.line else
                                     f"{w.file}: {w.key}: {w.message}"), stacklevel=2)
    return profile


def validate_files(paths: list[Path]) -> tuple[list[str], list[str]]:
    """(problems, warnings) over every file, one line each (check_files, as text)."""
    found = check_files(paths)
    return ([str(p) for p in found if p.severity == "error"], [str(p) for p in found if p.severity == "warning"])
