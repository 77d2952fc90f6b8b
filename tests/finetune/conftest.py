"""Fixtures shared by the finetune tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def one_thread():
    """One intra-op thread for the test: tiny models on a shared 2-core machine run faster (2 threads spin
    against each other and other processes; measured on the SAM tests: 35 tests 740 s wall / 476 s CPU
    with 2 threads, 57 s / 25 s with 1). Modules opt in with ``pytest.mark.usefixtures("one_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
