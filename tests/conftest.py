"""Shared pytest fixtures."""

from __future__ import annotations

import pytest

from http_server import serve_directory


@pytest.fixture
def http_server(tmp_path_factory):
    """A local HTTP server (tests/http_server.py) serving a fresh folder: ``server.directory``."""
    with serve_directory(tmp_path_factory.mktemp("served")) as server:
        yield server


@pytest.fixture
def one_torch_thread():
    """One torch thread for tiny models: fastest, and immune to other processes' load."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
