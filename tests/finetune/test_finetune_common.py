"""Shared training helpers in ``defectkit.finetune.common``."""

from __future__ import annotations

import ctypes
import platform

import pytest

from defectkit.finetune.common import reuse_freed_memory

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


@glibc
def test_reuse_freed_memory_serves_mib_blocks_from_the_heap():
    libc = ctypes.CDLL("libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc < 2.33 has no mallinfo2")
    libc.mallinfo2.restype = _MallInfo2
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    assert reuse_freed_memory() is True
    mapped = libc.mallinfo2().hblkhd  # bytes in blocks that malloc got as their own mmap
    block = libc.malloc(8 * 2**20)  # glibc's default maps anything over 128 KiB (until it adapts)
    try:
        assert libc.mallinfo2().hblkhd == mapped  # now it comes from the heap, and returns to it
    finally:
        libc.free(block)
    big = libc.malloc(64 * 2**20)  # over the 32 MiB limit: still its own mapping
    try:
        assert libc.mallinfo2().hblkhd >= mapped + 64 * 2**20
    finally:
        libc.free(big)


def test_reuse_freed_memory_is_a_no_op_without_glibc(monkeypatch):
    def no_glibc(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_glibc)
    assert reuse_freed_memory() is False
