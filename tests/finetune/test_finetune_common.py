"""Shared training helpers in ``defectkit.runtime``."""

from __future__ import annotations

import ctypes
import json
import platform
import subprocess
import sys

import pytest

from defectkit.runtime import reuse_freed_memory

#: run in a fresh interpreter: no other thread may map or unmap memory between the two readings
PROBE = r"""
import ctypes, json
from defectkit.runtime import reuse_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def mapped_by(size):  # bytes malloc maps on its own for one block of `size`
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(size)
    grown = libc.mallinfo2().hblkhd - before
    libc.free(block)
    return grown

out = {"default": mapped_by(8 << 20)}
out["set"] = reuse_freed_memory()
out["after"], out["over_limit"] = mapped_by(8 << 20), mapped_by(64 << 20)
print(json.dumps(out))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_reuse_freed_memory_serves_mib_blocks_from_the_heap():
    if not hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2"):
        pytest.skip("glibc < 2.33 has no mallinfo2")
    run = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got["default"] >= 8 << 20  # glibc's default: a block over 128 KiB is its own mapping
    assert got["set"] is True
    assert got["after"] == 0  # now it comes from the heap (and goes back to it on free)
    assert got["over_limit"] >= 64 << 20  # over the 32 MiB limit: still mapped


def test_reuse_freed_memory_is_a_no_op_without_glibc(monkeypatch):
    def no_glibc(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_glibc)
    assert reuse_freed_memory() is False
