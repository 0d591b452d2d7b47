"""Same photo, same seed, same bits: the numerical libraries are asked to be reproducible."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

# MKL's own constants (mkl_cbwr.h): the mode in the low bits, STRICT as a flag.
MKL_CBWR_OFF, MKL_CBWR_AUTO, MKL_CBWR_COMPATIBLE, MKL_CBWR_STRICT = 1, 2, 3, 0x10000

_QUERY = """
import ctypes, os, sys
import facecloak.engine  # the package, then torch, as every entry point imports them
import torch
lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
torch.ones(64, 64) @ torch.ones(64, 64)  # MKL has now read its settings
get = lib.mkl_serv_cbwr_get
get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
print(get(-1))
"""


def _mkl_mode(env_value: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    if env_value is not None:
        env["MKL_CBWR"] = env_value
    done = subprocess.run(
        [sys.executable, "-c", _QUERY], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


needs_mkl = pytest.mark.skipif(
    not torch.backends.mkl.is_available(), reason="this torch build has no MKL to configure"
)


@needs_mkl
def test_importing_facecloak_puts_mkl_in_strict_reproducible_mode():
    assert _mkl_mode(None) == MKL_CBWR_AUTO | MKL_CBWR_STRICT


@needs_mkl
def test_a_users_own_mkl_setting_wins():
    assert _mkl_mode("COMPATIBLE") == MKL_CBWR_COMPATIBLE
