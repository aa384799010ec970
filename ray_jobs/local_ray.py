"""A local Ray owned by one command: what the demo needs, kept here because Ray is imported only in ray_jobs/."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def owned_local_ray() -> Iterator[None]:
    """Shut Ray down when the block ends if the block started it (`run_grid` starts it on first use);
    a Ray that was already running when the block began is left running."""
    import ray

    owns = not ray.is_initialized()
    try:
        yield
    finally:
        if owns and ray.is_initialized():
            ray.shutdown()
