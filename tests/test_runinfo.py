"""Provenance of a recorded run: the commit of the checkout the code runs from."""
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.runinfo import git_commit

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_a_checkout_records_its_own_commit():
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert git_commit().removesuffix("-dirty") == head
