"""NVIDIA's real TensorRT Python bindings on a machine without TensorRT's native libraries, for the tests.

NVIDIA publishes the bindings as wheels of their own (`tensorrt-cu12-bindings`, `tensorrt-cu13-bindings`). Their
compiled module needs, at load time, only a few factory functions from `libnvinfer`, `libnvinfer_plugin` and
`libnvonnxparser`; everything else (enums, classes, method signatures, the whole `tensorrt.plugin` layer) is in
the wheel. `prepare(version)` fetches the wheel with pip into the tests' package cache (`package_cache`; never
installed into the environment), compiles stub libraries exporting those factories (they return null: no builder,
runtime, parser or plugin registry can be made) and writes a `tensorrt` module aliasing `tensorrt_bindings`.
`child_environment` then runs Python on it. One process can import only one `tensorrt`, so each version runs in
its own process.

Where pip cannot reach the registry or no C compiler exists, `prepare` raises `Unavailable` with the reason.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from package_cache import cached_target

# (package, version): 10.3 is JetPack 6's API level, 10.13 a 10.x with AOT Python plugins (10.9+), 11.4 JetPack 7's.
VERSIONS = {
    "10.3": ("tensorrt-cu12-bindings", "10.3.0"),
    "10.13": ("tensorrt-cu12-bindings", "10.13.3.9"),
    "11.4": ("tensorrt-cu13-bindings", "11.4.0.106"),
}
# The only symbols tensorrt.so imports from the native libraries (`nm -D --undefined-only`, same in all three).
STUBS = {
    "libnvinfer": """
        void *createInferBuilder_INTERNAL(void *logger, int version) { return 0; }
        void *createInferRuntime_INTERNAL(void *logger, int version) { return 0; }
        void *createInferRefitter_INTERNAL(void *engine, void *logger, int version) { return 0; }
        void *getPluginRegistry(void) { return 0; }
        void *getBuilderPluginRegistry(int capability) { return 0; }
    """,
    "libnvinfer_plugin": "int initLibNvInferPlugins(void *logger, const char *name_space) { return 0; }",
    "libnvonnxparser": """
        void *createNvOnnxParser_INTERNAL(void *network, void *logger, int version) { return 0; }
        void *createNvOnnxParserRefitter_INTERNAL(void *refitter, void *logger, int version) { return 0; }
        int getNvOnnxParserVersion(void) { return 0; }
    """,
}
ALIAS = "import sys\nimport tensorrt_bindings\n\nsys.modules[__name__] = tensorrt_bindings\n"


class Unavailable(Exception):
    """The bindings cannot be prepared here (no registry access, no compiler); the message says why."""


@dataclass(frozen=True)
class Bindings:
    version: str  # the wheel's full version, e.g. "10.13.3.9"
    python_path: tuple[Path, ...]  # the alias module's folder, then the unpacked wheel
    library_path: Path  # the stub libraries

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


def cache_root() -> Path:
    configured = os.environ.get("FMCA_TEST_CACHE")
    base = Path(configured) if configured else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "fmca-rt" / "tensorrt-bindings"


def _in_place(target: Path, build) -> Path:
    """Build into a temporary sibling and rename it into place: parallel test runs never see half a folder."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(scratch)
        os.replace(scratch, target)
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _write_alias(folder: Path) -> None:
    (folder / "tensorrt.py").write_text(ALIAS)


def _compile_stubs(major: int, folder: Path) -> None:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise Unavailable("no C compiler (cc or gcc) to build the stub TensorRT libraries")
    for name, source in STUBS.items():
        source_file = folder / f"{name}.c"
        source_file.write_text(source)
        result = subprocess.run([compiler, "-shared", "-fPIC", "-o", str(folder / f"{name}.so.{major}"),
                                 str(source_file)], capture_output=True, text=True)
        if result.returncode != 0:
            raise Unavailable(f"{compiler} could not build the stub {name}: {result.stderr.strip()[:200]}")


def prepare(short_version: str) -> Bindings:
    package, version = VERSIONS[short_version]
    major = int(version.split(".")[0])
    digest = hashlib.sha256("".join(STUBS.values()).encode()).hexdigest()[:12]
    try:
        site_dir, reason = cached_target(f"{package}=={version}")
        if site_dir is None:
            raise Unavailable(reason)
        alias_dir = _in_place(cache_root() / "alias", _write_alias)
        stub_dir = _in_place(cache_root() / f"stubs-{major}-{digest}", lambda d: _compile_stubs(major, d))
    except (OSError, subprocess.TimeoutExpired) as error:
        raise Unavailable(f"cannot prepare them under {cache_root()} ({error}); set FMCA_TEST_CACHE to a writable "
                          "folder") from None
    return Bindings(version, (alias_dir, site_dir), stub_dir)


def child_environment(bindings: Bindings, repo_root: Path) -> dict[str, str]:
    """The environment of a Python process whose `import tensorrt` is these bindings, with the repo importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, bindings.python_path), str(repo_root),
                                         *filter(None, [os.environ.get("PYTHONPATH")])])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(bindings.library_path),
                                                           os.environ.get("LD_LIBRARY_PATH")]))
    env["FMCA_EXPECTED_TENSORRT"] = bindings.version
    return env
