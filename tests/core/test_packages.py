"""The top-level names ptft installs beside itself are checked: another `evals` is refused, by name."""

from __future__ import annotations

import os
import subprocess
import sys

from ptft.core.packages import check_own_packages

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_our_packages_pass():
    check_own_packages()


def test_a_foreign_evals_package_is_named_with_the_fix(tmp_path):
    foreign = tmp_path / "evals"
    foreign.mkdir()
    (foreign / "__init__.py").write_text("# PyPI's evals, say\n")
    code = "from ptft.core.packages import check_own_packages; check_own_packages()"
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "PackageClashError" in proc.stderr and str(foreign) in proc.stderr
    assert "pip uninstall evals" in proc.stderr
