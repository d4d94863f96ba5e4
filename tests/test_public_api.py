"""gbifxdl imports like any package, and stages use each other only through public names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "gbifxdl"
STAGE_FUNCTIONS = ("select", "fetch", "curate", "run")


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (nothing imported yet) and return what happened."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def _public_modules() -> list[str]:
    """Return every module of the package whose dotted name has no private part."""
    names = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        if not any(p.startswith("_") for p in parts[1:]) and parts[:2] != ("gbifxdl", "__main__"):
            names.append(".".join(parts))
    return names


@pytest.mark.slow
@pytest.mark.parametrize("order", ["forward", "reverse"])
def test_every_public_module_imports_in_a_fresh_interpreter_in_any_order(order: str) -> None:
    modules = _public_modules()
    assert "gbifxdl.fetch.process" in modules and "gbifxdl.select" in modules
    if order == "reverse":
        modules = modules[::-1]
    code = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += "import gbifxdl\n" + "".join(
        f"assert callable(gbifxdl.{n}.{n}) and gbifxdl.{n}.__name__ == 'gbifxdl.{n}'\n" for n in STAGE_FUNCTIONS)
    done = _python(code)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("first", [
    "import gbifxdl.fetch.process",
    "import gbifxdl.select; gbifxdl.select.select",
    "from gbifxdl import curate",
    "import gbifxdl.curate._files",
    "from gbifxdl.run import run",
    "import gbifxdl; gbifxdl.post",
])
def test_stage_functions_live_in_their_modules_whatever_was_imported_first(first: str) -> None:
    code = f"""{first}
import gbifxdl
from gbifxdl.select import select, SelectSettings
from gbifxdl.fetch import fetch, FetchSettings
from gbifxdl.curate import curate, CurateSettings
from gbifxdl.run import run, RunSettings
import gbifxdl.fetch.process as process
assert gbifxdl.select.select is select and gbifxdl.fetch.fetch is fetch
assert gbifxdl.curate.curate is curate and gbifxdl.run.run is run
assert gbifxdl.fetch.process is process
assert gbifxdl.FetchSettings is FetchSettings and gbifxdl.RunSettings is RunSettings
"""
    done = _python(code)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_every_name_in_all_resolves_and_import_stays_light() -> None:
    code = """import sys, gbifxdl
heavy = {'pyarrow', 'duckdb', 'aiohttp', 'PIL', 'numpy', 'requests'} & set(sys.modules)
assert not heavy, heavy
missing = [n for n in gbifxdl.__all__ if getattr(gbifxdl, n, None) is None]
assert not missing, missing
for stage in ('select', 'fetch', 'curate', 'run'):
    assert stage not in gbifxdl.__all__, stage  # a module, not a top-level function
for n in ('post', 'poll_status', 'download_occurrences', 'preprocess_occurrences_stream',
          'AsyncImagePipeline', 'postprocess', 'wait', 'status', 'download_archive', 'write_card',
          'write_report', 'SelectSettings', 'FetchSettings', 'CurateSettings', 'RunSettings'):
    assert n in gbifxdl.__all__, n
for module in ('gbifxdl.fetch', 'gbifxdl.select', 'gbifxdl.curate', 'gbifxdl.gbif', 'gbifxdl.query', 'gbifxdl.compat'):
    m = __import__(module, fromlist=['_'])
    for n in getattr(m, '__all__', ()):
        assert getattr(m, n, None) is not None, (module, n)
"""
    done = _python(code)
    assert done.returncode == 0, done.stderr


def _stage(module: str) -> str:
    """Return the top-level part a module belongs to: gbifxdl.curate._table -> curate."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    """Return (line, dotted name) of every absolute import, with each imported name spelled out."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def test_no_module_imports_another_stages_private_module() -> None:
    offences = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        own = parts[1] if len(parts) > 1 else ""
        for line, name in _imports(ast.parse(path.read_text(), str(path))):
            pieces = name.split(".")
            # gbifxdl._io and the like are the package's shared helpers; gbifxdl.X._y is X's own
            if pieces[0] == "gbifxdl" and len(pieces) > 2 and pieces[1] != own:
                if any(p.startswith("_") for p in pieces[2:]):
                    offences.append(f"{path.relative_to(SRC.parent)}:{line} imports {name}")
    assert not offences, "use the stage's public surface instead:\n" + "\n".join(offences)


def test_the_private_import_check_sees_both_spellings() -> None:
    tree = ast.parse("from gbifxdl.curate import _table\nimport gbifxdl.gbif._http\nfrom gbifxdl.curate._files import X\n")
    names = {name for _, name in _imports(tree)}
    assert {"gbifxdl.curate._table", "gbifxdl.gbif._http", "gbifxdl.curate._files.X"} <= names
    assert _stage("gbifxdl.curate._table") == "curate"


def test_shared_constants_have_one_definition() -> None:
    from gbifxdl import _meta
    from gbifxdl.fetch.settings import FetchSettings

    definitions = {name: [] for name in ("PROVENANCE_KEY", "USER_AGENT", "DEFAULT_USER_AGENT")}
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id in definitions:
                        definitions[target.id].append(str(path.relative_to(SRC.parent)))
    assert definitions == {"PROVENANCE_KEY": ["gbifxdl/_meta.py"], "USER_AGENT": ["gbifxdl/_meta.py"],
                           "DEFAULT_USER_AGENT": []}
    assert FetchSettings().user_agent == _meta.USER_AGENT
    assert _meta.PROVENANCE_KEY == b"gbifxdl.provenance"  # the key ARCHITECTURE.md promises
