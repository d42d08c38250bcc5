"""Shared fixtures: the data mirror, and copies of the project for end-to-end runs."""

from __future__ import annotations

import ast
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def load_stage(name: str):
    """stages/<name>.py as a module (its main() is tested in-process).

    By path: `stages/` is a folder of scripts, not a package on sys.path.."""
    spec = importlib.util.spec_from_file_location(f"stage_{name}", ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def one_thread():
    """Tiny models run faster on one thread, and a shared machine does not stall them."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


VERSE = """first citizen:
before we proceed any further, hear me speak.
all:
speak, speak.
first citizen:
you are all resolved rather to die than to famish?
all:
resolved. resolved.
"""  # a few lines of tiny-shakespeare for tests that need a corpus


def write_fake_images(folder: Path, sizes: dict[str, int], seed: int = 0) -> Path:
    """A prepared Fashion-MNIST folder of random images, ``sizes`` per split, every class
    present (labels 0..9 in turn)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in sizes.items():
        torch.save({"images": torch.rand(n, 1, 28, 28, generator=gen),
                    "labels": torch.arange(n) % 10}, folder / f"{split}.pt")
    return folder


def mirror_path() -> Path | None:
    """GENMODELS_MIRROR if set, else ../shared/mirror beside the checkout, if present."""
    env = os.environ.get("GENMODELS_MIRROR")
    path = Path(env) if env else ROOT.parent / "shared" / "mirror"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def mirror() -> Path:
    path = mirror_path()
    if path is None:
        pytest.skip("no data mirror: set GENMODELS_MIRROR (see README)")
    return path


def copy_project(dest: Path) -> Path:
    """Copy the project's source files (git-tracked or not ignored) into ``dest``; git init it."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def run_dvc(project: Path, *args: str, mirror: Path | None = None, check: bool = True,
            timeout: float = 900, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    """``dvc <args>`` in ``project`` with this venv first on PATH and the mirror set."""
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "MLFLOW_TRACKING_URI": "",  # each copy records into its own mlflow.db
        **(extra_env or {}),
    }
    if mirror is not None:
        env["GENMODELS_MIRROR"] = str(mirror)
    result = subprocess.run(
        [str(VENV_BIN / "dvc"), *args], cwd=project, env=env, capture_output=True, text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def apply_tiny_params(project: Path, every_family: bool = False) -> dict:
    """Replace the sections of ``project/params.yaml`` named in tests/tiny_params.yaml (one
    image and one text model); ``every_family`` adds tests/tiny_params_more.yaml's models."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    tiny = yaml.safe_load((ROOT / "tests" / "tiny_params.yaml").read_text())
    if every_family:
        for section, entries in yaml.safe_load(
                (ROOT / "tests" / "tiny_params_more.yaml").read_text()).items():
            tiny[section] = {**tiny[section], **entries}
    params.update(tiny)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory, mirror) -> Path:
    """A project copy in which the whole pipeline ran once with tiny params (`dvc repro`).

    The end-to-end tests of every stage assert on it; a test that changes it
    must restore what it changed.
    """
    project = copy_project(tmp_path_factory.mktemp("tiny"))
    apply_tiny_params(project)
    run_dvc(project, "repro", mirror=mirror, extra_env={"OMP_NUM_THREADS": "1"})
    return project



def tests_using(fixture: str) -> set[str]:
    """The node ids (``tests/<file>::<test>``, no parameters) of the tests that take ``fixture``
    as an argument, read from the source: the xdist controller collects no tests itself."""
    found = set()
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
                    and fixture in {a.arg for a in node.args.args}):
                found.add(f"{path.parent.name}/{path.name}::{node.name}")
    return found


def pytest_xdist_make_scheduler(config, log):
    """Two workers (pyproject.toml: ``-n 2``): every test of the shared tiny pipeline goes
    to one worker, so the fixture is built once and no two tests run DVC in that copy at the
    same time; the other worker takes every other test meanwhile. (xdist's own
    ``--dist loadgroup`` does this with markers, but its worker-side renaming of node ids
    has no effect under pytest 9.2.)"""
    from xdist.scheduler import LoadScopeScheduling

    tiny = tests_using("tiny_pipeline")

    class TinyPipelineScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "tiny_pipeline" if nodeid.split("[")[0] in tiny else nodeid

    return TinyPipelineScheduling(config, log)
