"""The wheel users install: typed, licensed, and nothing else (no tests, no benchmarks)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy of the source (tracked and new, not ignored): setuptools writes build/ and
    # *.egg-info beside the source it builds.
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, text=True, check=True)
    src = out / "src"
    for name in tracked.stdout.splitlines():
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(src)],
        capture_output=True, text=True,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (path,) = out.glob("agent_cost_breaker-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_holds_py_typed_and_license_and_no_tests(wheel):
    names = wheel.namelist()
    assert "breaker/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith("LICENSE") for n in names)
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "tools/", "examples/"))]
    assert any(n.startswith("breaker_langchain/") for n in names)  # the plugins ship as their own packages


def test_metadata_is_ready_to_publish(wheel):
    (meta,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    text = wheel.read(meta).decode()
    assert "License-Expression: MIT" in text
    assert "Classifier: Typing :: Typed" in text
    assert "Project-URL:" in text
    requires_all = [line for line in text.splitlines() if line.startswith("Requires-Dist:") and 'extra == "all"' in line]
    assert requires_all and not [line for line in requires_all if "bench" in line]  # the peers' pins stay out


def test_import_does_not_read_package_metadata():
    code = "import sys, breaker; print('importlib.metadata' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
