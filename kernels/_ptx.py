"""PTX text: a kernel entry's parameters, whether the body reads them, and removing unread trailing ones.

Triton (3.4 and later) appends two pointer parameters to every kernel entry, for global and profiling scratch
memory. A kernel compiled with zero scratch sizes never reads them, and TensorRT's AOT launcher passes only the
arguments a plugin declares, so the PTX handed to TensorRT declares exactly those.
"""

from __future__ import annotations

import re

from fmca_rt.errors import FMCAError


class PTXError(FMCAError, ValueError):
    """PTX that does not have the shape this module expects (no such entry, a parameter that is read)."""


def _entry(ptx: str, name: str) -> re.Match:
    match = re.search(r"\.entry\s+" + re.escape(name) + r"\s*\((.*?)\)", ptx, re.S)
    if match is None:
        raise PTXError(f"The PTX has no entry named {name}.")
    return match


def entry_parameters(ptx: str, name: str) -> list[str]:
    """The entry's parameter declarations, in order (e.g. '.param .u64 .ptr .global .align 1 k_param_0')."""
    return [p.strip() for p in _entry(ptx, name).group(1).split(",") if p.strip()]


def reads_parameter(ptx: str, name: str, index: int) -> bool:
    """Whether anything besides the declaration mentions parameter `index` (a load, or taking its address)."""
    return len(re.findall(rf"\b{re.escape(name)}_param_{index}\b", ptx)) > 1


def strip_unread_parameters(ptx: str, name: str, keep: int) -> str:
    """The PTX with every parameter after the first `keep` removed from the entry; refuses if one is read."""
    match = _entry(ptx, name)
    parameters = entry_parameters(ptx, name)
    read = [i for i in range(keep, len(parameters)) if reads_parameter(ptx, name, i)]
    if read:
        raise PTXError(f"The kernel {name} reads parameter(s) {read} beyond its {keep} declared arguments.")
    body = ",\n".join("\t" + p for p in parameters[:keep])
    return ptx[:match.start(1)] + "\n" + body + "\n" + ptx[match.end(1):]


def isa_version(ptx: str) -> str:
    match = re.search(r"^\.version\s+(\S+)", ptx, re.M)
    if match is None:
        raise PTXError("The PTX has no '.version' line.")
    return match.group(1)
