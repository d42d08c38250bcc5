"""Issue 13: dvc.yaml's code deps are exactly the source files each stage runs.

The list is computed from the imports (``genmodels.imports``); a stage that declares fewer
files than it runs would not re-run when one of them changes, and one that declares more
would re-run for nothing. Fix a failure by editing the stage's deps in dvc.yaml, or print
the right list with ``python -m genmodels.imports stages/<stage>.py``.
"""

import ast
import re
from pathlib import Path

import pytest
import yaml

from genmodels.imports import closure

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = ("dvc.yaml", "inception/dvc.yaml")  # the default pipeline, the opt-in one
STAGES = {f"{f}:{name}": stage for f in PIPELINES
          for name, stage in yaml.safe_load((ROOT / f).read_text())["stages"].items()}


def stage_body(stage: dict) -> dict:
    return stage.get("do", stage)  # a foreach stage's template, or the stage itself


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_are_the_source_files_it_imports(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    body = stage_body(STAGES[name])
    script = re.search(r"stages/\w+\.py", body["cmd"]).group(0)
    declared = [d for d in body["deps"] if isinstance(d, str)]
    assert script in declared, f"{name}: its script {script} is not a dep"
    declared_src = {d for d in declared if d.startswith("src/")}
    imported = {p.as_posix() for p in closure(script)}
    assert not imported - declared_src, f"{name}: runs but does not declare {sorted(imported - declared_src)}"
    assert not declared_src - imported, f"{name}: declares but does not run {sorted(declared_src - imported)}"


def test_every_stage_script_is_a_stage():
    used = {re.search(r"stages/\w+\.py", stage_body(s)["cmd"]).group(0) for s in STAGES.values()}
    assert used == {p.relative_to(ROOT).as_posix() for p in (ROOT / "stages").glob("*.py")}


def test_package_init_files_hold_no_code():
    """The closure leaves the package ``__init__`` files out, which is right only while
    they run nothing: a docstring and constants at most."""
    for init in (ROOT / "src/genmodels").rglob("__init__.py"):
        body = ast.parse(init.read_text()).body
        assert all(isinstance(n, ast.Expr | ast.Assign) and isinstance(n.value, ast.Constant)
                   for n in body), init  # a docstring, __version__ = "..."



def test_closure_follows_every_kind_of_import(tmp_path):
    pkg = tmp_path / "src/genmodels"
    (pkg / "sub").mkdir(parents=True)
    for f in ("__init__.py", "sub/__init__.py"):
        (pkg / f).write_text('"""doc"""\n')
    (pkg / "a.py").write_text("from .sub import b\n")  # relative, a submodule by name
    (pkg / "sub/b.py").write_text("def f():\n    from genmodels.sub.c import g  # lazy\n")
    (pkg / "sub/c.py").write_text("import genmodels.d\ng = 1\n")
    (pkg / "d.py").write_text("import os\n")
    (pkg / "unused.py").write_text("")
    script = tmp_path / "stage.py"
    script.write_text("import torch\nfrom genmodels import a\n")
    found = [p.relative_to(tmp_path).as_posix() for p in closure(script, tmp_path / "src")]
    assert found == ["src/genmodels/a.py", "src/genmodels/d.py", "src/genmodels/sub/b.py",
                     "src/genmodels/sub/c.py"]
