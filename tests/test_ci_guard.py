"""CI regression guards: the compare rules on hand-written runs, bad input files, a real
pytest-benchmark run through the pipeline, and a broken splice caught on ``saved_bytes``."""
import io
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from harness import HarnessError
from harness.backbones.resnet import build_backbone
from harness.ci_guard import FORMAT, bench_step, check, load_current, main, summarise
from harness.measure.memory import step_figures
from harness.spaces.nb201.encoding import ALL_CONV3X3
from harness.spaces.nb201.network import NB201Network
from harness.transfer.splice import FrozenPrefix, TrNet, build_tr_net

MB = 1_000_000


def _bench(name, median, pair=None, role=None, ratio=None, rounds=5, warmup_rounds=1, **figures):
    extra = dict(figures)
    if pair:
        extra.update(pair=pair, role=role)
    if ratio is not None:
        extra["tr_original_time_ratio"] = ratio
    if warmup_rounds is not None:  # bench_step records it; pytest-benchmark does not
        extra["warmup_rounds"] = warmup_rounds
    return {"name": name, "extra_info": extra, "stats": {"median": median, "rounds": rounds}}


def _run(orig_saved=10 * MB, tr_saved=4 * MB, orig_s=1.0, tr_s=0.5, tabular_s=0.01, extra=(), rounds=5, warmup=1):
    """A run of one pair as bench_step records it: the Tr side carries the interleaved ratio."""
    return {"machine_info": {"cpu": {"brand_raw": "test cpu"}}, "benchmarks": [
        _bench("step[original]", orig_s, "cpu/step", "original", rounds=rounds, warmup_rounds=warmup,
               saved_bytes=orig_saved, params=1000, trainable_params=1000),
        _bench("step[trnet55]", tr_s, "cpu/step", "tr", ratio=tr_s / orig_s, rounds=rounds, warmup_rounds=warmup,
               saved_bytes=tr_saved, params=900, trainable_params=700),
        _bench("tabular_query", tabular_s), *extra]}


def _check(tmp_path, current, baseline=None, absolute=False):
    """Write the baseline (from ``baseline`` or the default run) and ``current``; run ``check``."""
    base = tmp_path / "base.json"
    base.write_text(json.dumps(summarise(baseline or _run())))
    cur = tmp_path / "cur.json"
    cur.write_text(json.dumps(current))
    out = io.StringIO()
    rc = check(cur, base, absolute=absolute, out=out)
    return rc, out.getvalue()


def test_unchanged_run_passes(tmp_path):
    rc, out = _check(tmp_path, _run())
    assert rc == 0 and "guard passed" in out


def test_memory_growth_half_percent_passes_two_percent_fails(tmp_path):
    rc, out = _check(tmp_path, _run(tr_saved=4_020_000))  # +0.5%
    assert rc == 0
    assert "ok: step[trnet55]: saved_bytes moved from 4000000 to 4020000 (+0.50%, limit 1%)" in out
    rc, out = _check(tmp_path, _run(tr_saved=4_080_000))  # +2%
    assert rc == 1
    assert "step[trnet55]: saved_bytes moved from 4000000 to 4080000 (+2.00%, limit 1%)" in out.splitlines()


def test_unguarded_ratio_is_noted_and_its_bytes_still_checked(tmp_path):
    slow = _run(tr_s=5.0)  # e.g. bf16 emulated: 10x the Original's time
    slow["benchmarks"][1]["extra_info"]["ratio_unguarded"] = "no native bf16"
    rc, out = _check(tmp_path, slow)
    assert rc == 0
    assert ("note: cpu/step: tr/original time ratio not guarded (5 rounds, 1 warm-up): no native bf16 "
            "(its memory figures still are)") in out.splitlines()
    assert _check(tmp_path, _run(tr_s=5.0))[0] == 1  # without the reason the same ratio fails
    grown = _run(tr_s=5.0, tr_saved=5 * MB)
    grown["benchmarks"][1]["extra_info"]["ratio_unguarded"] = "no native bf16"
    rc, out = _check(tmp_path, grown)
    assert rc == 1 and "step[trnet55]: saved_bytes moved from 4000000 to 5000000" in out


def test_memory_shrink_is_reported_and_passes(tmp_path):
    rc, out = _check(tmp_path, _run(orig_saved=9 * MB))
    assert rc == 0 and "saved_bytes moved from 10000000 to 9000000 (-10.00%" in out


def test_missing_figure_fails(tmp_path):
    run = _run()
    del run["benchmarks"][1]["extra_info"]["saved_bytes"]
    rc, out = _check(tmp_path, run)
    assert rc == 1 and "step[trnet55]: saved_bytes missing from the current run (baseline 4000000)" in out


def test_ratio_worse_by_20_percent_fails_10_percent_passes(tmp_path):
    rc, out = _check(tmp_path, _run(tr_s=0.6))  # ratio 0.5 -> 0.6
    assert rc == 1
    assert ("cpu/step: tr/original time ratio moved from 0.5 to 0.6 (+20.00%, limit 15%; 5 rounds, 1 warm-up)"
            in out.splitlines())
    rc, out = _check(tmp_path, _run(tr_s=0.55))  # +10%
    assert rc == 0 and "ok: cpu/step: tr/original time ratio moved from 0.5 to 0.55 (+10.00%" in out


def test_whole_machine_slower_keeps_the_ratio(tmp_path):
    rc, _ = _check(tmp_path, _run(orig_s=3.0, tr_s=1.5, tabular_s=0.03))
    assert rc == 0


def test_interleaved_ratio_wins_over_medians(tmp_path):
    run = _run(tr_s=0.9)  # separate medians say 0.9, the interleaved rounds 0.52
    run["benchmarks"][1]["extra_info"]["tr_original_time_ratio"] = 0.52
    assert load_current_from(tmp_path, run)["ratios"] == {"cpu/step": 0.52}
    assert _check(tmp_path, run)[0] == 0


@pytest.mark.parametrize("rounds, warmup, shown", [
    (1, 0, "1 round, 0 warm-up"),  # the one cold round that moved a ratio by +52% on an unchanged tree
    (2, 1, "2 rounds, 1 warm-up"),
    (7, 0, "7 rounds, 0 warm-up"),
    (7, None, "7 rounds, warm-up not recorded"),
])
def test_ratio_from_too_few_or_cold_rounds_is_not_guarded(tmp_path, rounds, warmup, shown):
    run = _run(tr_s=0.9, rounds=rounds, warmup=warmup)  # 0.5 -> 0.9 would fail a guarded ratio
    assert load_current_from(tmp_path, run)["ratios"] == {}
    rc, out = _check(tmp_path, run)
    assert rc == 0 and "tr/original time ratio moved" not in out
    assert f"note: cpu/step: tr/original time ratio not guarded ({shown}): a guarded ratio needs >= 3" in out
    assert "1 time ratios checked" not in out and "0 time ratios checked, 1 not guarded" in out
    grown = _run(tr_s=0.9, tr_saved=5 * MB, rounds=rounds, warmup=warmup)
    rc, out = _check(tmp_path, grown)  # its memory figures are still guarded
    assert rc == 1 and "step[trnet55]: saved_bytes moved from 4000000 to 5000000" in out


def test_ratio_of_separate_medians_is_not_guarded(tmp_path):
    run = _run(tr_s=0.9)
    del run["benchmarks"][1]["extra_info"]["tr_original_time_ratio"]
    rc, out = _check(tmp_path, run)
    assert rc == 0 and ("note: cpu/step: tr/original time ratio not guarded (5 rounds, 1 warm-up): two separate "
                        "benchmarks, not interleaved rounds") in out


def test_a_baseline_keeps_only_guarded_ratios(tmp_path):
    slow = _run(extra=[_bench("big[original]", 7.0, "cpu/big", "original", rounds=1, warmup_rounds=0, saved_bytes=9),
                       _bench("big[tr]", 3.5, "cpu/big", "tr", rounds=1, warmup_rounds=0, saved_bytes=4)])
    doc = load_current_from(tmp_path, slow)
    assert doc["ratios"] == {"cpu/step": 0.5} and doc["ratio_rounds"] == {"cpu/step": "5 rounds, 1 warm-up",
                                                                          "cpu/big": "1 round, 0 warm-up"}
    assert set(doc["unguarded"]) == {"cpu/big"}


class _FakeBenchmark:
    """Just enough of pytest-benchmark's fixture for bench_step to reach its checks."""

    def __init__(self):
        self.extra_info, self.stats = {}, None

    def pedantic(self, target, setup=None, rounds=1, warmup_rounds=0, iterations=1):
        for _ in range(warmup_rounds + rounds):
            if setup:
                setup()
            target()


@pytest.mark.parametrize("rounds, warmup", [(1, 0), (2, 1), (5, 0)])
def test_bench_step_refuses_a_ratio_from_too_few_or_cold_rounds(rounds, warmup):
    torch.manual_seed(0)
    net = NB201Network(ALL_CONV3X3, C=4, N=1)
    x, y = torch.randn(2, 3, 16, 16), torch.zeros(2, dtype=torch.long)
    with pytest.raises(HarnessError, match=r"needs >= 3 interleaved rounds after >= 1 warm-up round"):
        bench_step(_FakeBenchmark(), net, x, y, pair="p", role="tr", original=net, rounds=rounds, warmup_rounds=warmup)
    # without original= (no ratio: the memory figures only) the same rounds are fine
    fake = _FakeBenchmark()
    bench_step(fake, net, x, y, pair="p", role="tr", rounds=rounds, warmup_rounds=warmup)
    assert fake.extra_info["rounds"] == rounds and fake.extra_info["warmup_rounds"] == warmup


def load_current_from(tmp_path, run):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    return load_current(path)


def test_missing_benchmark_fails(tmp_path):
    run = _run()
    run["benchmarks"] = run["benchmarks"][:2]
    rc, out = _check(tmp_path, run)
    assert rc == 1 and "tabular_query: missing from the current run (it is in the baseline)" in out


def test_missing_pair_side_fails_on_the_ratio(tmp_path):
    run = _run()
    del run["benchmarks"][1]
    rc, out = _check(tmp_path, run)
    assert rc == 1 and "cpu/step: tr/original time ratio missing from the current run (baseline 0.5)" in out


def test_new_benchmark_is_noted_not_failed(tmp_path):
    rc, out = _check(tmp_path, _run(extra=[_bench("new_one", 1.0, saved_bytes=5)]))
    assert rc == 0 and "note: new_one: not in the baseline" in out


def test_absolute_medians_only_when_opted_in(tmp_path):
    slower = _run(orig_s=2.0, tr_s=1.0, tabular_s=0.02)  # everything 2x: ratios unchanged
    assert _check(tmp_path, slower)[0] == 0
    rc, out = _check(tmp_path, slower, absolute=True)
    assert rc == 1
    assert "tabular_query: median_s moved from 0.01 to 0.02 (+100.00%, limit 15%)" in out.splitlines()
    assert _check(tmp_path, _run(tabular_s=0.011), absolute=True)[0] == 0  # +10%


def test_cli_baseline_then_check(tmp_path, capsys):
    cur = tmp_path / "cur.json"
    cur.write_text(json.dumps(_run()))
    base = tmp_path / "baselines" / "ci-cpu.json"
    assert main(["baseline", "--current", str(cur), "--out", str(base)]) == 0
    doc = json.loads(base.read_text())
    assert doc["format"] == FORMAT and doc["ratios"] == {"cpu/step": 0.5} and doc["machine"] == "test cpu"
    assert doc["benchmarks"]["step[trnet55]"]["figures"] == {"saved_bytes": 4 * MB, "params": 900,
                                                             "trainable_params": 700}
    assert main(["check", "--current", str(cur), "--baseline", str(base)]) == 0
    cur.write_text(json.dumps(_run(orig_saved=11 * MB)))
    assert main(["check", "--current", str(cur), "--baseline", str(base)]) == 1
    assert "step[original]: saved_bytes moved from 10000000 to 11000000 (+10.00%, limit 1%)" in capsys.readouterr().out


@pytest.mark.parametrize("content, message", [
    (None, "file not found"),
    ("{not json", "not valid JSON"),
    (json.dumps({"benchmarks": []}), "no 'benchmarks' list"),
    (json.dumps({"benchmarks": [{"name": "x"}]}), "lacks name or stats.median"),
    (json.dumps({"benchmarks": [_bench("x", 1.0), _bench("x", 2.0)]}), "appears twice"),
    (json.dumps({"benchmarks": [_bench("x", 1.0, "p", "sideways")]}), "role 'sideways'"),
    (json.dumps({"benchmarks": [_bench("x", 1.0, saved_bytes="lots")]}), "must be numbers"),
])
def test_bad_current_file_exits_2(tmp_path, capsys, content, message):
    base = tmp_path / "base.json"
    base.write_text(json.dumps(summarise(_run())))
    cur = tmp_path / "cur.json"
    if content is not None:
        cur.write_text(content)
    assert main(["check", "--current", str(cur), "--baseline", str(base)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("harness guards check: error: current run") and message in err


@pytest.mark.parametrize("content", [
    '{"benchmarks": {}}',
    json.dumps({"format": FORMAT, "benchmarks": {"x": {}}}),
    json.dumps({"format": FORMAT, "benchmarks": {}, "ratios": {"p": "fast"}}),
])
def test_bad_baseline_exits_2(tmp_path, capsys, content):
    cur, base = tmp_path / "cur.json", tmp_path / "base.json"
    cur.write_text(json.dumps(_run()))
    base.write_text(content)
    assert main(["check", "--current", str(cur), "--baseline", str(base)]) == 2
    assert "error: baseline" in capsys.readouterr().err


# -- the real thing ------------------------------------------------------------------------------

class LeakyPrefix(FrozenPrefix):
    """The regression the guard exists for: a prefix that is not frozen and runs with grad
    enabled, so autograd keeps every prefix activation for a backward it does not need."""

    def __init__(self, backbone, j):
        super().__init__(backbone, j)
        self.requires_grad_(True)

    def outputs(self, x, last):
        kept = []
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
            kept = (kept + [x])[-last:]
        return kept


def test_guard_catches_a_splice_that_keeps_prefix_activations(tmp_path):
    torch.manual_seed(0)
    backbone = build_backbone("resnet32")
    x, y = torch.randn(4, 3, 32, 32), torch.zeros(4, dtype=torch.long)
    good = step_figures(build_tr_net(NB201Network(ALL_CONV3X3), backbone, i=5, j=5), x, y)
    broken = step_figures(TrNet(LeakyPrefix(backbone, 5), NB201Network(ALL_CONV3X3), 5), x, y)
    assert broken["saved_bytes"] > 1.3 * good["saved_bytes"]

    def run(figures):
        return {"benchmarks": [_bench("step[cpu-trnet55-all_conv3x3]", 0.4, **figures)]}

    rc, out = _check(tmp_path, run(broken), baseline=run(good))
    assert rc == 1
    assert (f"step[cpu-trnet55-all_conv3x3]: saved_bytes moved from {good['saved_bytes']} to "
            f"{broken['saved_bytes']} (+") in out


BENCH_FILE = '''
import pytest, torch
from harness.ci_guard import bench_step
from harness.spaces.nb201.network import NB201Network

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|skip_connect~1|nor_conv_3x3~2|"

@pytest.mark.parametrize("role", ["original", "tr"])
def test_step(benchmark, role):
    torch.manual_seed(0)
    big, small = NB201Network(ARCH, C=8, N=1), NB201Network(ARCH, C=4, N=1)
    x, y = torch.randn(2, 3, 16, 16), torch.zeros(2, dtype=torch.long)
    model, original = (big, None) if role == "original" else (small, big)
    bench_step(benchmark, model, x, y, pair="tiny", role=role, original=original, rounds=3, warmup_rounds=1)
'''


def test_real_benchmark_run_through_the_guard(tmp_path):
    """One real ``pytest --benchmark-enable --benchmark-json`` run of ``bench_step`` (tiny nets),
    summarised into a baseline and checked against itself."""
    (tmp_path / "test_tiny_bench.py").write_text(textwrap.dedent(BENCH_FILE))
    out = tmp_path / "run.json"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-enable",
                           f"--benchmark-json={out}", "--rootdir", str(tmp_path), str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          # not as an xdist worker: pytest-benchmark turns itself off there
                          env={**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
                               "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = load_current(out)
    tr = run["benchmarks"]["test_step[tr]"]
    assert tr["role"] == "tr" and tr["figures"]["saved_bytes"] > 0 and 0 < tr["paired_ratio"] < 10
    assert run["ratios"] == {"tiny": tr["paired_ratio"]}
    assert (run["benchmarks"]["test_step[original]"]["figures"]["saved_bytes"] > tr["figures"]["saved_bytes"])
    base = tmp_path / "base.json"
    assert main(["baseline", "--current", str(out), "--out", str(base)]) == 0
    assert main(["check", "--current", str(out), "--baseline", str(base)]) == 0
