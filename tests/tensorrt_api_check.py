"""Calls checked against NVIDIA's real TensorRT Python bindings: names, argument counts, keywords and enum types.

pybind11 writes each method's signature as the first line(s) of its docstring, e.g.
`set_timing_cache(self: tensorrt.IBuilderConfig, cache: tensorrt.ITimingCache, ignore_mismatch: bool) -> bool`
(overloads as "1. name(...)"). `Checked(fake, real_class)` wraps a stand-in for a factory-made TensorRT object
(a builder, a config, an engine, ...): every attribute the code reads must exist on the real class, every call must
bind to one of the real overloads (positional count, keyword names, enum-typed arguments of that enum), every
attribute the code sets must be a settable property there. What the stand-in returns is wrapped the same way when
it declares the real class it imitates (`imitates = "IBuilderConfig"`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SIGNATURE = re.compile(r"^(?:\d+\. )?(\w+)\((.*)\) -> (.*)$")


@dataclass(frozen=True)
class Parameter:
    name: str
    annotation: str
    has_default: bool


def _split_parameters(text: str) -> list[str]:
    """Split on top-level commas (annotations contain brackets and commas)."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "[(" and 1 or 0
        depth -= char in "])" and 1 or 0
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return parts + ([current.strip()] if current.strip() else [])


def overloads(member) -> list[list[Parameter]]:
    """The parameters (after `self`) of every overload pybind11 documents for a bound method."""
    found = []
    for line in (member.__doc__ or "").splitlines():
        match = _SIGNATURE.match(line.strip())
        if match is None or match.group(2) in ("*args, **kwargs",):
            continue
        parameters = []
        for part in _split_parameters(match.group(2)):
            name, _, rest = part.partition(":")
            annotation, _, default = rest.partition("=")
            parameters.append(Parameter(name.strip(), annotation.strip(), bool(default.strip())))
        found.append(parameters[1:] if parameters and parameters[0].name == "self" else parameters)
    return found


def _enum_class(trt, annotation: str):
    """The bound enum class an annotation names (`tensorrt_bindings.tensorrt.BuilderFlag`), or None."""
    path = annotation.split(".")
    if len(path) < 2 or path[0] not in ("tensorrt", "tensorrt_bindings"):
        return None
    owner = trt
    for name in path[2:] if path[1] == "tensorrt" else path[1:]:
        owner = getattr(owner, name, None)
        if owner is None:
            return None
    return owner if hasattr(owner, "__members__") else None


def _binds(trt, parameters: list[Parameter], args: tuple, kwargs: dict) -> str | None:
    """None when the call binds to this overload, else why not."""
    if len(args) > len(parameters):
        return f"{len(args)} positional arguments, at most {len(parameters)}"
    bound = dict(zip((p.name for p in parameters), args))
    for key in kwargs:
        if key not in {p.name for p in parameters}:
            return f"no keyword {key!r}"
        if key in bound:
            return f"{key!r} given twice"
    bound.update(kwargs)
    for parameter in parameters:
        if parameter.name not in bound:
            if not parameter.has_default:
                return f"{parameter.name!r} missing"
            continue
        enum = _enum_class(trt, parameter.annotation)
        value = bound[parameter.name]
        if enum is not None and not isinstance(value, enum):
            return f"{parameter.name!r} must be a {enum.__name__}, got {value!r}"
        if parameter.annotation == "str" and not isinstance(value, str):
            return f"{parameter.name!r} must be a str, got {type(value).__name__}"
    return None


def check_call(trt, real_class, name: str, args: tuple, kwargs: dict) -> None:
    member = getattr(real_class, name, None)
    where = f"TensorRT {trt.__version__}: {real_class.__name__}.{name}"
    if member is None:
        raise AssertionError(f"{where} does not exist")
    signatures = overloads(member)
    if not signatures:
        raise AssertionError(f"{where} documents no signature")
    reasons = [_binds(trt, parameters, args, kwargs) for parameters in signatures]
    if all(reasons):
        raise AssertionError(f"{where}{args!r}{kwargs or ''} does not bind: {'; '.join(reasons)}")


def check_settable(trt, real_class, name: str) -> None:
    member = getattr(real_class, name, None)
    if not isinstance(member, property) or member.fset is None:
        raise AssertionError(f"TensorRT {trt.__version__}: {real_class.__name__}.{name} is not a settable property")


class Checked:
    """A stand-in for a factory-made TensorRT object, held to the real class's interface."""

    def __init__(self, trt, fake, real_class):
        object.__setattr__(self, "_checked", (trt, fake, real_class))

    def __getattr__(self, name):
        trt, fake, real_class = object.__getattribute__(self, "_checked")
        if not hasattr(real_class, name):
            raise AssertionError(f"TensorRT {trt.__version__}: {real_class.__name__} has no attribute {name!r}")
        value = getattr(fake, name)
        if not callable(value) or isinstance(getattr(real_class, name), property):
            return wrap(trt, value)

        def call(*args, **kwargs):
            check_call(trt, real_class, name, args, kwargs)
            return wrap(trt, value(*unwrap(args), **dict(zip(kwargs, unwrap(kwargs.values())))))

        return call

    def __setattr__(self, name, value):
        trt, fake, real_class = object.__getattribute__(self, "_checked")
        check_settable(trt, real_class, name)
        setattr(fake, name, value)

    @property
    def fake(self):
        return object.__getattribute__(self, "_checked")[1]


def wrap(trt, value):
    """`value` held to the real class it imitates, when `trt` is NVIDIA's module (a fake namespace lacks it)."""
    real_class = getattr(trt, getattr(type(value), "imitates", ""), None)
    return value if real_class is None else Checked(trt, value, real_class)


def bare(value):
    """The stand-in behind a `Checked` wrapper (or the value itself)."""
    return value.fake if isinstance(value, Checked) else value


def unwrap(values) -> list:
    """The stand-ins themselves, for handing the code's arguments on to other stand-ins."""
    return [bare(value) for value in values]


def checked_factory(trt, fake_factory, real_class):
    """A factory (`trt.Builder(logger)`) whose arguments are checked against the real constructor."""

    def create(*args, **kwargs):
        check_call(trt, real_class, "__init__", args, kwargs)
        return Checked(trt, fake_factory(*unwrap(args), **dict(zip(kwargs, unwrap(kwargs.values())))), real_class)

    return create


def public_members(cls) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_") and name != "imitates"}
