"""scripts/gpu_check.py: the deadline logic (a step that does not fit is skipped, one that overruns
is stopped, a failing one does not stop the rest), the dry run of the whole flow on the CPU, and
the one line without CUDA."""
import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
sys.modules["gpu_check"] = gpu_check  # its dataclasses look their module up
spec.loader.exec_module(gpu_check)
Step = gpu_check.Step


def test_allowance_is_sized_from_the_time_left():
    step = Step("x", "x", min_s=30, share=0.25, run=None)
    assert gpu_check.allowance(step, 29.9) is None          # does not fit: skipped
    assert gpu_check.allowance(step, 40) == 30               # at least its minimum
    assert gpu_check.allowance(step, 400) == 100             # its share of what is left
    assert gpu_check.allowance(Step("y", "y", 10, 2.0, None), 50) == 50  # never more than is left


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_steps_that_do_not_fit_are_skipped_and_failures_do_not_stop_the_rest(tmp_path):
    clock, ran = FakeClock(), []

    def takes(seconds):
        def run(check, allow):
            ran.append(allow)
            clock.now += seconds
            return f"took {seconds}"
        return run

    def fails(check, allow):
        raise RuntimeError("boom")

    steps = (Step("a", "first", 10, 0.5, takes(60)), Step("b", "too-big", 50, 0.5, takes(1)),
             Step("c", "broken", 5, 0.5, fails), Step("d", "small", 5, 0.5, takes(1)))
    check = gpu_check.Check(out=tmp_path, dry=True, device=torch.device("cpu"), full_data=False)
    records = gpu_check.run_steps(check, steps, deadline=100, clock=clock)
    assert [r["status"] for r in records] == ["ok", "skipped", "failed", "ok"]
    assert records[1]["note"] == "needs at least 50 s, 40 s left"
    assert ran == [50, 20]  # half of 100 s, then half of the 40 s left
    assert "RuntimeError: boom" in records[2]["note"] and (tmp_path / "error-broken.log").exists()


def test_a_step_past_its_allowance_is_stopped(tmp_path):
    def slow(check, allow):
        time.sleep(5)
        return "never"

    steps = (Step("a", "slow", 0.1, 0.01, slow), Step("b", "next", 0.1, 1.0, lambda c, a: "ran"))
    check = gpu_check.Check(out=tmp_path, dry=True, device=torch.device("cpu"), full_data=False)
    t0 = time.monotonic()
    records = gpu_check.run_steps(check, steps, deadline=time.monotonic() + 20)
    assert [r["status"] for r in records] == ["stopped", "ok"] and time.monotonic() - t0 < 4


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_without_cuda_one_line_and_nothing_written(tmp_path, capsys):
    assert gpu_check.main(["--out", str(tmp_path / "gpu")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("gpu-check: no CUDA device") and not (tmp_path / "gpu").exists()


@pytest.mark.slow
def test_dry_run_runs_every_step_and_writes_the_report(tmp_path):
    out = tmp_path / "gpu"
    assert gpu_check.main(["--dry-run", "--out", str(out), "--budget-s", "1200"]) == 0
    doc = json.loads((out / "gpu-check.json").read_text())
    assert [(r["step"], r["name"], r["status"]) for r in doc["steps"]] == [
        ("a", "cuda-tests", "ok"), ("b", "memory", "ok"), ("c", "concurrency", "ok"),
        ("d", "trained-vs-table", "ok"), ("d", "rank", "ok"), ("e", "dartspt", "ok")]
    assert {"card", "torch", "cuda", "commit", "data"} <= set(doc["environment"])
    report = (out / "report.md").read_text()
    for section in ("## a. CUDA tests", "## b. Memory", "## c. Candidates at once", "## d. Our Original training",
                    "## d. Table 1 slice: Original vs Tr-Net-5-5", "## e. DARTS+PT"):
        assert section in report
    assert all((out / t).is_dir() for t in ("memory", "throughput", "speed", "train", "rank", "oneshot"))
    tiny = gpu_check.main(["--dry-run", "--out", str(tmp_path / "late"), "--budget-s", "25"])  # 5 s for steps
    assert tiny == 0
    late = json.loads((tmp_path / "late" / "gpu-check.json").read_text())
    assert {r["status"] for r in late["steps"]} == {"skipped"}
    assert "skipped" in (tmp_path / "late" / "report.md").read_text()
