"""The engine fixes glibc's allocator thresholds once per process, unless the user set them."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

PROBE = "from deeper.runtime import tune_allocator as t; print(t(), t())"


def _probe(**env) -> str:
    clean = {
        k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
    }
    p = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt"
)
def test_thresholds_are_fixed_once_per_process():
    assert _probe() == "True False"


def test_the_users_settings_and_the_opt_out_are_left_alone():
    assert _probe(MALLOC_MMAP_THRESHOLD_="131072") == "False False"
    assert _probe(DEEPER_MALLOC="0") == "False False"
