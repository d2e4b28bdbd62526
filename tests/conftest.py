"""Shared pytest fixtures."""

from __future__ import annotations

import pytest

from http_server import serve_directory


@pytest.fixture
def http_server(tmp_path_factory):
    """A local HTTP server (tests/http_server.py) serving a fresh folder: ``server.directory``."""
    with serve_directory(tmp_path_factory.mktemp("served")) as server:
        yield server
