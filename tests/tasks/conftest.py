"""Fixtures of the tasks tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ptft.tasks import declared
from ptft.tasks.formats import templates
from ptft.tasks.registry import REGISTRY


@pytest.fixture
def isolated_registry() -> Iterator[None]:
    """Tasks a test declares leave the process-wide registry as they found it (the golden tests list it)."""
    saved = [(d, dict(d)) for d in (REGISTRY, templates.TEMPLATES, templates.TEMPLATE_OPTIONS, declared._DECLARED)]
    yield
    for live, copy in saved:  # in place: other modules hold these very dicts
        live.clear()
        live.update(copy)
