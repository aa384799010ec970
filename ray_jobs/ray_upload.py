"""The one adapter over Ray's private packaging API (`ray._private`), used to measure a working_dir upload.

`ray job submit` zips the working_dir with helpers Ray does not publish; the upload check in
`ray_jobs/submit.py` uses the very same helpers so its answer is Ray's. They may move in any Ray
release: everything ptft needs from `ray._private` is looked up here, inside a try, and a missing piece
raises `RayInternalsMoved` naming the installed Ray version and the piece, instead of an AttributeError
deep in a submit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

TESTED_RAY = "2.60"  # the Ray these names were checked against (pyproject pins ray>=2.60,<2.61)


class RayInternalsMoved(RuntimeError):
    """Ray's private packaging helpers are not where this adapter expects them."""


def _ray_version() -> str:
    try:
        import ray

        return ray.__version__
    except Exception:  # noqa: BLE001 (ray missing or broken: say so in the message)
        return "unknown (ray does not import)"


def _internals() -> SimpleNamespace:
    """Ray's private pieces, or RayInternalsMoved naming what is missing."""
    try:
        from ray._private import ray_constants
        from ray._private.runtime_env import packaging

        return SimpleNamespace(
            dashboard_max=ray_constants.DASHBOARD_CLIENT_MAX_SIZE,
            default_excludes=ray_constants.get_runtime_env_default_excludes,
            gcs_max=packaging.GCS_STORAGE_MAX_SIZE,
            dir_travel=packaging._dir_travel,
            get_excludes=packaging._get_excludes,
            create_package=packaging.create_package,
        )
    except (ImportError, AttributeError) as err:
        raise RayInternalsMoved(
            f"ray {_ray_version()}: its private packaging helpers moved ({type(err).__name__}: {err}); "
            f"ptft's upload check was written for ray {TESTED_RAY}. Install the pinned ray "
            "(constraints.txt) or update ray_jobs/ray_upload.py") from err


def upload_limit() -> int:
    """Bytes Ray accepts for one working_dir package through `ray job submit`.

    The zip is PUT to the dashboard (aiohttp `client_max_size` = DASHBOARD_CLIENT_MAX_SIZE, 100 MiB),
    then stored in the GCS (GCS_STORAGE_MAX_SIZE); the smaller bound is the one that bites.
    """
    ray = _internals()
    return min(ray.dashboard_max, ray.gcs_max)


def default_excludes() -> list[str]:
    """The patterns Ray always applies to a working_dir (before the runtime_env's own `excludes`)."""
    return list(_internals().default_excludes())


def walk(root: Path, excludes: list[str], record: Callable[[Path], None], *, include_gitignore: bool,
         logger: logging.Logger) -> None:
    """Call `record` on every path Ray's packager visits under `root` (excludes and .gitignore applied)."""
    ray = _internals()
    ray.dir_travel(root, [ray.get_excludes(root, excludes)], record, include_gitignore=include_gitignore,
                   logger=logger)


def create_package(root: Path, package: Path, excludes: list[str], *, include_gitignore: bool,
                   logger: logging.Logger) -> None:
    """Write the zip Ray would upload for `root` to `package`."""
    _internals().create_package(str(root), package, include_gitignore=include_gitignore, excludes=excludes,
                                logger=logger)
