"""Fixtures shared by the finetune tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def one_thread():
    """One intra-op thread for the test: small CPU-bound tests run faster on a shared 2-core machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
