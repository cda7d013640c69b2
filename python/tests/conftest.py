"""Fixtures: a real maru-devd daemon serving a private maru-fs mount for the session.

The binaries are not built here: they are looked up (``$MARU_DEVD`` and
``$MARU_LIBRARY``, else ``$CARGO_TARGET_DIR`` or the workspace's ``target/``, release
or debug, whichever was built last). Build them first with
``cargo build -p libmaru -p maru-devd`` (add ``--release`` for benchmarks). A package
installed with ``pip install ./python`` loads the libmaru bundled in it first
(``maru/_lib.py``); ``$MARU_LIBRARY`` then only serves a package without one.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

try:
    import maru  # noqa: F401  (the installed package: `pip install ./python`)
except ImportError:  # running from the source tree without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maru._lib import newest_first  # noqa: E402  (after the sys.path fallback above)

REPO = Path(__file__).resolve().parents[2]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
BUILD = "cargo build -p libmaru -p maru-devd"

# Pools of the test daemon. `small` is only for the eviction test; `private` is
# root-only (mode 0700), for the unprivileged-access test.
POOLS = {
    "kv": ("256MiB", "1777", "lru"),
    "small": ("8MiB", "1777", "lru"),
    "private": ("16MiB", "0700", "lru"),
}


def _target_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("CARGO_TARGET_DIR"):
        dirs.append(Path(os.environ["CARGO_TARGET_DIR"]))
    dirs.append(REPO / "target")
    return [d / p for d in dirs for p in ("release", "debug")]


def _find(env: str, name: str) -> Path:
    if os.environ.get(env):
        p = Path(os.environ[env])
        if not p.is_file():
            pytest.fail(f"${env}={p} does not exist; build with: {BUILD}")
        return p
    tried = [d / name for d in _target_dirs()]
    for i in range(0, len(tried), 2):  # per target dir: release/debug, newest first
        p = next((p for p in newest_first(tried[i : i + 2]) if p.is_file()), None)
        if p is not None:
            return p
    pytest.fail(f"{name} not found (looked at {', '.join(map(str, tried))}; or set ${env}); build it first: {BUILD}")


def _is_mountpoint(path: Path) -> bool:
    want = str(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" ")[4] == want for line in f)


@dataclass
class World:
    """The test daemon's mount and how to reach it."""

    mnt: Path
    run: Path
    log: Path
    lib: Path
    devd: Path
    proc: subprocess.Popen
    #: A world-readable copy of the package and libmaru for the unprivileged user (the
    #: checkout and the venv may sit where that user cannot read, e.g. under /root).
    shared: Path

    def pool(self, name: str) -> Path:
        return self.mnt / name

    def url(self, name: str, scheme: str = "maru") -> str:
        return f"{scheme}://{self.mnt / name}"

    def run_py(self, code: str, *args: str, user: list[str] | None = None, timeout: float = 60):
        """Runs Python ``code`` in a new process, as root or (``user=NOBODY``) unprivileged.

        Root uses this interpreter and the ``maru`` package this process imported; the
        unprivileged user runs the system python on the world-readable copy.
        """
        import maru

        env = dict(os.environ)
        if user:
            python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else os.path.realpath(sys.executable)
            env["PYTHONPATH"] = str(self.shared)
            env["MARU_LIBRARY"] = str(self.shared / "libmaru.so")
        else:
            python = sys.executable
            pkg_root = str(Path(maru.__file__).resolve().parents[1])
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [pkg_root, env.get("PYTHONPATH")]))
        cmd = (user or []) + [python, "-c", code, *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd="/", check=False)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


@pytest.fixture(scope="session")
def world():
    if os.geteuid() != 0:
        pytest.skip("SKIP: the maru handler tests need root (maru-devd mounts tmpfs and FUSE)")
    if not Path("/dev/fuse").exists():
        pytest.skip("SKIP: /dev/fuse is missing (modprobe fuse)")
    devd = _find("MARU_DEVD", "maru-devd")
    lib = _find("MARU_LIBRARY", "libmaru.so")
    os.environ["MARU_LIBRARY"] = str(lib)  # this process and its children use this one
    tmp = Path(tempfile.mkdtemp(prefix="maru-py-test-"))
    tmp.chmod(0o755)  # the unprivileged test user must reach the mount point
    # Pool-wide pin records of this session's pools (maru/_pins.py), not the host's.
    os.environ["MARU_PIN_DIR"] = str(tmp / "pins")
    (tmp / "pins").mkdir()
    (tmp / "pins").chmod(0o1777)  # like /dev/shm: the unprivileged test user pins too
    mnt, run, log = tmp / "mnt", tmp / "run", tmp / "daemon.log"
    import maru

    shared = tmp / "pkg"
    shutil.copytree(Path(maru.__file__).parent, shared / "maru", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(lib, shared / "libmaru.so")
    for d, _, files in os.walk(shared):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o755 if f.endswith(".so") else 0o644)
    cfg = tmp / "maru.yaml"
    pools = "".join(
        f'  - name: {n}\n    source: {{numa: {{node: 0}}}}\n    size: {s}\n    mode: "{m}"\n    eviction: {e}\n'
        for n, (s, m, e) in POOLS.items()
    )
    cfg.write_text(f"mount: {mnt}\npools:\n{pools}")
    env = dict(os.environ, MARU_RUNTIME_DIR=str(run))
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [str(devd), "run", "--config", str(cfg)], env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf
        )
    w = World(mnt, run, log, lib, devd, proc, shared)
    try:
        deadline = time.monotonic() + 30
        while not (_is_mountpoint(mnt) and all((mnt / p).is_dir() for p in POOLS)):
            if proc.poll() is not None:
                pytest.fail(f"maru-devd exited ({proc.returncode}) during start:\n{w.log_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"maru-devd did not mount {mnt} within 30 s:\n{w.log_text()}")
            time.sleep(0.05)
        yield w
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # The daemon leaves its pool tmpfs mounts behind on purpose (adopted by a restart).
        leftovers = [mnt] + sorted((run / "pools").glob("*")) if (run / "pools").is_dir() else [mnt]
        for d in leftovers:
            while _is_mountpoint(d):
                if subprocess.run(["umount", "-l", str(d)], capture_output=True).returncode != 0:
                    break
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def key():
    """A unique LMCache-like key prefix for one test (keys contain '/')."""
    tag = uuid.uuid4().hex[:12]
    return lambda i=0: f"llama/3-8b@1@0@{tag}{i:04x}/chunk@bfloat16"


@pytest.fixture
def config_for(world):
    """MaruConfig for a pool of the test daemon."""
    from maru import MaruConfig

    def make(pool: str = "kv", **kw):
        kw.setdefault("chunk_size_bytes", 1 << 20)
        kw.setdefault("pool_size", 64 << 20)
        kw.setdefault("reserve_chunks", 2)
        return MaruConfig(server_url=world.url(pool), **kw)

    return make


@pytest.fixture
def handler(config_for):
    """A connected handler on pool `kv`."""
    from maru import MaruHandler

    h = MaruHandler(config_for())
    assert h.connect(), h.last_error
    yield h
    h.close()
