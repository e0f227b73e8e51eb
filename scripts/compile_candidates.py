"""Does ``torch.compile`` (CPU inductor) pay for itself on a full-size Table 1 candidate?

    python scripts/compile_candidates.py [--archs 3] [--steps 20] [--mode channels_last] [--out results/table1/compile.md]

For the first architectures of the paper-protocol order (``benchmarks/nb201-table1-paper.toml``),
Tr-Net-5-5 and Original training steps at batch 256 in ``--mode`` (default: the paper definitions'
pinned fp32 channels_last; ``default`` = the device's default mode), eager vs
compiled, side by side: per architecture the compile time (first compiled step minus an eager
step) and the median step time of each over ``steps`` interleaved, warmed steps (eager, compiled,
eager, ...). A full-size Tr-Net-5-5 candidate is 18 epochs x 98 steps = 1,764 steps, so the
break-even speed-up is 1 + compile time / (1,764 x eager step). The backbone is an untrained
ResNet-32 (its weights do not change the arithmetic).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from harness.backbones.resnet import build_backbone
from harness.proxies.settings import TrainSettings
from harness.runinfo import device_name
from harness.spaces import get_space
from harness.store.files import write_text
from harness.store.markdown import markdown_table
from harness.train.loop import in_format, make_optimizer, one_step, prepare
from harness.train.recipe import default_mode
from harness.transfer.splice import build_tr_net

STEPS_PER_CANDIDATE = {"tr-net-5-5": 18 * 98, "original": 12 * 98}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(archs: int, steps: int, mode: str) -> list[list]:
    space = get_space("nb201")
    order = np.random.default_rng(0).permutation(15625)[:archs]
    x = torch.randn(256, 3, 32, 32)
    y = torch.randint(0, 10, (256,))
    rows = []
    for a in order:
        for method in ("tr-net-5-5", "original"):
            cfg = TrainSettings().config(method).with_mode(mode)
            xs = in_format(x, cfg)
            models = {}
            for kind in ("eager", "compiled"):
                torch.manual_seed(0)
                net = space.build_network(space.canonical(int(a)), num_classes=10)
                m = build_tr_net(net, build_backbone("resnet32", 10), i=5, j=5) if method != "original" else net
                m = prepare(m, cfg).train()
                models[kind] = (torch.compile(m) if kind == "compiled" else m, make_optimizer(m, cfg))
            eager_first = _timed(lambda: one_step(*models["eager"], xs, y, cfg))
            compiled_first = _timed(lambda: one_step(*models["compiled"], xs, y, cfg))
            times = {"eager": [], "compiled": []}
            for _ in range(steps):
                for kind in ("eager", "compiled"):
                    times[kind].append(_timed(lambda: one_step(*models[kind], xs, y, cfg)))
            e, c = np.median(times["eager"]), np.median(times["compiled"])
            compile_s = compiled_first - eager_first
            n = STEPS_PER_CANDIDATE[method]
            rows.append([int(a), method, cfg.mode, f"{compile_s:.1f}", f"{e * 1000:.0f}", f"{c * 1000:.0f}",
                         f"{e / c:.3f}", f"{1 + compile_s / (n * e):.3f}",
                         f"{(n * e) / (n * c + compile_s):.3f}"])
            print(" ".join(map(str, rows[-1])), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--mode", default="channels_last", help="a training mode name, or 'default' (the device's)")
    ap.add_argument("--out", default="results/table1/compile.md")
    args = ap.parse_args()
    mode = default_mode("cpu") if args.mode == "default" else args.mode
    rows = measure(args.archs, args.steps, mode)
    text = "\n\n".join([
        "# torch.compile on full-size Table 1 candidates",
        f"`python scripts/compile_candidates.py --archs {args.archs} --steps {args.steps} --mode {args.mode}` on `{device_name('cpu')}`, "
        f"torch {torch.__version__}; batch 256; medians of {args.steps} interleaved warmed steps.",
        markdown_table(["arch", "method", "mode", "compile s", "eager ms/step", "compiled ms/step", "step speed-up",
                        "break-even speed-up", "whole-candidate speed-up"], rows)])
    print(f"wrote {write_text(text + chr(10), args.out)}")


if __name__ == "__main__":
    main()
