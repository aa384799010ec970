"""ptft's top-level packages beside `ptft`: `evals`, `trainers` and `ray_jobs` keep the project's folder
names (a cluster job's `--working-dir .` imports them from the upload as they are). PyPI also has a
package named `evals`, and pip installs either over the other without a word, so the commands check that
each name is ours before anything runs."""

from __future__ import annotations

import importlib
import importlib.util

TOP_LEVEL = ("evals", "trainers", "ray_jobs")


class PackageClashError(RuntimeError):
    """A top-level name ptft relies on is another distribution's package."""


def check_own_packages(names: tuple[str, ...] = TOP_LEVEL) -> None:
    """Raise `PackageClashError` naming the file and the fix when `names` are not ptft's own."""
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None:
            raise PackageClashError(f"package {name!r} is missing: reinstall ptft (`pip install -e .` in "
                                    "the checkout, or the ptft wheel)")
        module = importlib.import_module(name)
        if getattr(module, "PTFT_PACKAGE", False) is not True:
            where = getattr(module, "__file__", None) or list(getattr(module, "__path__", []))
            raise PackageClashError(
                f"the package {name!r} at {where} is not ptft's (another distribution installs a package of "
                f"that name, e.g. PyPI's `{name}`). Uninstall it (`pip uninstall {name}`) or use a separate "
                "virtualenv for ptft, then reinstall ptft.")
