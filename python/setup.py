"""Builds the ``maru-cxl`` wheel with libmaru inside it (``maru/_native/libmaru.so``).

``pip install ./python`` (from a Maru checkout) compiles libmaru from the Cargo
workspace one directory up (``cargo build --release -p libmaru``) and ships the
library in a platform wheel (``py3-none-<platform>``: the library is loaded with
ctypes and does not link libpython, so one wheel serves every Python 3). The package
finds the bundled library first (see ``maru/_lib.py``). It needs Rust >= 1.85
(``cargo`` on ``PATH``, in ``$CARGO`` or in ``~/.cargo/bin``); the only Python build
dependency is setuptools.

Environment:

* ``MARU_CARGO_FLAGS`` -- extra cargo flags, e.g. ``--features cuda``;
* ``MARU_CARGO_PROFILE`` -- ``release`` (default) or ``dev`` (faster to build, slower);
* ``MARU_BUILD_LIBMARU=0`` -- no library in the wheel (pure Python): the package then
  loads ``$MARU_LIBRARY`` or a checkout's ``target/`` build.

Build a wheel to copy elsewhere with ``pip wheel ./python`` or
``python -m build --wheel python`` (not from an sdist: libmaru's sources live outside
``python/``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
WORKSPACE = HERE.parent
LIB = "libmaru.so"


def _want_library() -> bool:
    return os.environ.get("MARU_BUILD_LIBMARU", "1").strip().lower() not in ("0", "no", "false", "off")


def _cargo() -> str:
    for cand in (os.environ.get("CARGO"), shutil.which("cargo"), str(Path.home() / ".cargo" / "bin" / "cargo")):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise SystemExit(
        "maru: cargo not found. Installing the maru package compiles libmaru, the Rust client "
        "library: install Rust >= 1.85 (https://rustup.rs) and retry, or set MARU_BUILD_LIBMARU=0 "
        "for a pure-Python install that loads $MARU_LIBRARY."
    )


def build_libmaru() -> Path:
    """Runs cargo on the workspace and returns the path of the built libmaru.so."""
    manifest = WORKSPACE / "libmaru" / "Cargo.toml"
    if not manifest.is_file():
        raise SystemExit(
            f"maru: {manifest} not found: the wheel builds libmaru from the Maru checkout that "
            "contains this python/ directory (install with `pip install ./python` from the checkout, "
            "not from an sdist), or set MARU_BUILD_LIBMARU=0 and point $MARU_LIBRARY at a built libmaru.so."
        )
    profile = os.environ.get("MARU_CARGO_PROFILE", "release").strip() or "release"
    cmd = [_cargo(), "build", "--locked", "-p", "libmaru", "--profile", profile]
    cmd += ["--message-format=json-render-diagnostics", *shlex.split(os.environ.get("MARU_CARGO_FLAGS", ""))]
    print("maru: building libmaru:", " ".join(cmd[1:]), flush=True)
    proc = subprocess.run(cmd, cwd=WORKSPACE, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"maru: building libmaru failed (cargo exited with {proc.returncode}; its errors are above)")
    for line in proc.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") == "compiler-artifact" and "cdylib" in msg.get("target", {}).get("kind", []):
            for f in msg.get("filenames", []):
                if Path(f).name == LIB:
                    return Path(f)
    raise SystemExit(f"maru: cargo built libmaru but reported no {LIB}")


class BuildPy(build_py):
    """Copies the Python sources, then puts a fresh libmaru.so into maru/_native/."""

    def run(self) -> None:
        super().run()
        dest = Path(self.build_lib) / "maru" / "_native" / LIB
        if not _want_library() or getattr(self, "editable_mode", False):
            dest.unlink(missing_ok=True)  # never ship a copy left in build/ by an earlier build
            return  # editable installs load the checkout's target/ build
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(build_libmaru(), dest)
        dest.chmod(0o755)


class BinaryDistribution(Distribution):
    """A wheel that carries a native library is a platform wheel."""

    def has_ext_modules(self) -> bool:
        return _want_library()


class BdistWheel(bdist_wheel):
    """Tags the wheel py3-none-<platform>: libmaru.so is loaded by ctypes, not imported."""

    def get_tag(self) -> tuple[str, str, str]:
        python, abi, plat = super().get_tag()
        return ("py3", "none", plat) if _want_library() else (python, abi, plat)


setup(distclass=BinaryDistribution, cmdclass={"build_py": BuildPy, "bdist_wheel": BdistWheel})
