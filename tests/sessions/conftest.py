"""A small simulated site, written once per test run in the real source formats."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.sessions.helpers import make_dataset


@pytest.fixture(scope="session")
def site_dataset(tmp_path_factory) -> Path:
    """Ten days of three chargers (two with OCPP logs), read-only: copy before changing it."""
    return make_dataset(tmp_path_factory.mktemp("site") / "dataset")


@pytest.fixture
def site_copy(site_dataset, tmp_path) -> Path:
    """A private copy of :func:`site_dataset` a test may change."""
    target = tmp_path / "dataset"
    shutil.copytree(site_dataset, target)
    return target
