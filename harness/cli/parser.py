"""The command line's shape: every subcommand, its flags, its help text with a runnable example.

Each subcommand names its handler in ``harness.cli`` (``func``) by name, so this module only
describes arguments and the handlers stay where they run."""
from __future__ import annotations

import argparse

from harness.analysis.autotransfer import AutoTransferSettings
from harness.analysis.rank import TIES, TRAIN_SELECTIONS
from harness.backbones.resnet import SHORTCUTS
from harness.proxies import TABLE_PROXIES
from harness.search.faults import FAULTS
from harness.train.recipe import COSINE_PERIODS, MODES, PRECISIONS
from harness.transfer.depth import CKA_ESTIMATORS, DEFAULT_ESTIMATOR, DEFAULT_THRESHOLDS
from harness.transfer.splice import PREFIX_BN

RESULTS = "results"


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="cifar10-valid", help="cifar10-valid (default), cifar10, cifar100, ImageNet16-120")
    p.add_argument("--data-dir", help="folder with the official archives (default: embedded 5k CIFAR-10 images)")
    p.add_argument("--npz", help="a .npz with uint8 x_train/y_train/x_test/y_test (NHWC)")
    p.add_argument("--limit", type=int, help="use only the first N images of each split (tiny runs)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _example(*lines: str) -> dict:
    """Parser options for a help text that ends with a runnable example, kept as written."""
    return {"epilog": "example:\n" + "\n".join(f"  {line}" for line in lines),
            "formatter_class": argparse.RawDescriptionHelpFormatter}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="harness", description="Benchmark harness for Transfer-NAS (TR-NAS).",
                                 **_example("harness bench benchmarks/nb201-rank.toml   # paper Tables 1/3, seconds"))
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--results", default=str(RESULTS), help="results folder (default: ./results)")
    common.add_argument("--progress", action="store_true", help="progress bars even when stderr is not a terminal")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("rank", parents=[common], help="rank correlation of a proxy vs NB201's 200-epoch test accuracy",
                       **_example("harness rank --proxy nb201-12ep-val --dataset cifar10 --top-k 1000"))
    p.add_argument("--proxy", nargs="+", default=["nb201-12ep-val"],
                   help=f"table proxies: {', '.join(TABLE_PROXIES)} (default: nb201-12ep-val = 'Original')")
    p.add_argument("--dataset", nargs="+", default=["all"], help="cifar10 cifar100 ImageNet16-120 or all")
    p.add_argument("--sample", type=int, help="architectures per random draw (default: all when no --top-k)")
    p.add_argument("--draws", type=int, default=20, help="random draws to average (default 20)")
    p.add_argument("--top-k", type=int, help="also rank the top-k by ground truth")
    p.add_argument("--ties", choices=TIES, default="drop", help="top-k boundary ties (default: drop)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--benchmark", help="table: shipped (default), a .parquet, or an official NB201/NATS file")
    p.set_defaults(func="cmd_rank")

    p = sub.add_parser("bench", parents=[common], help="run benchmark definition files (benchmarks/*.toml)",
                       **_example("harness bench benchmarks/nb201-rea.toml --seeds 2"))
    p.add_argument("definitions", nargs="+", help="TOML files, e.g. benchmarks/nb201-rea.toml")
    p.add_argument("--full", action="store_true", help="apply each file's [full] table (full-size, GPU)")
    p.add_argument("--seeds", type=int, help="override the number of seeds")
    p.add_argument("--budget", type=int, help="override the query budget")
    p.add_argument("--workers", type=int, help="worker processes per search study on this machine (a journal file without --storage)")
    p.add_argument("--train-archs", type=int, help="rank benchmarks: also train this many random archs per method")
    p.add_argument("--train-selections", nargs="+", choices=TRAIN_SELECTIONS,
                   help="rank benchmarks: train the trained proxies on random archs (train.archs), the top_k "
                        "by ground truth, or both")
    p.add_argument("--storage", help="search studies in this database URL (postgresql://, mysql://) or journal "
                                     "file, joinable from other machines with `harness worker`")
    p.add_argument("--batch", help="resume the studies of this batch id in --storage (definition must match)")
    p.add_argument("--new-batch", action="store_true",
                   help="start a new batch even if an unfinished one of the same definition exists (by default "
                        "a search resumes it)")
    p.add_argument("--until", metavar="HH:MM", help="rank definitions: stop cleanly before the next candidate once "
                                                   "this local time is reached (a rerun continues)")
    p.add_argument("--hours", type=float, help="rank definitions: stop cleanly before the next candidate after "
                                               "this many hours (a rerun continues)")
    p.add_argument("--check", action="store_true",
                   help="validate the files and what their runs need (results folder, data, storage), run "
                        "nothing, write nothing: one line per file, exit 0; or the first problem, exit 2")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func="cmd_bench")

    p = sub.add_parser("worker", parents=[common], help="join a search study in a shared storage (any machine)",
                       **_example("harness bench benchmarks/nb201-rea.toml --seeds 1 --storage search.jsonl   # prints the batch id",
                                  "harness worker --storage search.jsonl --study BATCH_ID"))
    p.add_argument("--storage", required=True, help="the study's database URL or journal file")
    p.add_argument("--study", required=True, help="a study name (run id) or a batch id: its studies in order")
    p.add_argument("--heartbeat", type=float, default=FAULTS.heartbeat_s, help="seconds between a trial's beats")
    p.add_argument("--grace", type=float, default=FAULTS.grace_s,
                   help="seconds without a beat after which a trial's worker counts as dead (must exceed --heartbeat)")
    p.add_argument("--reconnect", type=float, default=FAULTS.reconnect_s,
                   help="seconds to keep retrying a lost database before exiting")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func="cmd_worker")

    p = sub.add_parser("leaderboard", parents=[common], help="rebuild leaderboard.md and plots from results/",
                       **_example("harness leaderboard --results results"))
    p.set_defaults(func="cmd_leaderboard")

    p = sub.add_parser("train", parents=[common], help="train one candidate (Original or Tr-Net-i-j)",
                       **_example("harness train --arch 1 --method original --epochs 2 --limit 512"))
    p.add_argument("--arch", required=True, help="NB201 string or benchmark index; DARTS: Genotype(...) text")
    p.add_argument("--space", default="nb201", help="search space: nb201 (default) or darts")
    p.add_argument("--network", nargs="+", metavar="KEY=VALUE",
                   help="network options of the space, e.g. darts: C=8 layers=5 auxiliary=false "
                        "(default: the space's own, darts C=36 layers=20)")
    p.add_argument("--method", default="original", help="original (default) or tr-net-<i>-<j>, e.g. tr-net-5-5")
    p.add_argument("--backbone", help="pre-trained backbone checkpoint (needed by tr-net methods)")
    p.add_argument("--cosine-period", choices=COSINE_PERIODS,
                   help="cosine after warmup over only the epochs after_warmup (default: anneals to ~0) or all_epochs "
                        "(the last Tr-Net epoch at 88%% of the peak)")
    p.add_argument("--prefix-bn", choices=PREFIX_BN, default="running",
                   help="BN statistics of the frozen prefix: running (pre-trained, default) or batch")
    p.add_argument("--allow-backbone-overlap", action="store_true",
                   help="accept a backbone trained on images the candidate is validated or tested on")
    p.add_argument("--warmup", type=int, help="LR warmup epochs (default 0 Original, 13 Tr-Net)")
    p.add_argument("--cutout", type=int, help="Cutout length (default 0 = off)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="bf16 autocast (fp32 master weights) or fp32 throughout (default: bf16 where the device "
                        "has native bf16 -- a CUDA card of compute capability >= 8, a CPU with AVX512-BF16 or "
                        "AMX -- else fp32)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC memory format for the model and batches (default: on where bf16 is the "
                        "default; --precision fp32 --no-channels-last = the plain fp32 recipe)")
    p.add_argument("--compile", action="store_true", default=None,
                   help="train through torch.compile (inductor): faster steps after a one-time compile of "
                        "about 0.5-2 minutes; recorded in the row (column compiled)")
    p.add_argument("--transfer", choices=["auto"], help="auto: choose i, j from CKA (overrides --method)")
    p.add_argument("--transfer-threshold", type=float,
                   help="CKA every pair on the path must reach (default: the estimator's calibrated one, "
                        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_THRESHOLDS.items()) + ")")
    p.add_argument("--cka-estimator", choices=CKA_ESTIMATORS,
                   help=f"CKA estimator of the small CKA run (default {DEFAULT_ESTIMATOR}); with --cka: "
                        "the table's own")
    p.add_argument("--cka", help="an existing cka.parquet to choose from (default: run a small CKA first)")
    p.add_argument("--cka-archs", type=int,
                   help=f"architectures in that small CKA (default {AutoTransferSettings.cka_archs})")
    p.add_argument("--cka-epochs", type=int,
                   help=f"their training epochs (default {AutoTransferSettings.cka_epochs})")
    _add_data_args(p)
    p.set_defaults(func="cmd_train")

    p = sub.add_parser("cka", parents=[common], help="CKA of backbone blocks vs NB201 cells (paper Figs. 1/2)",
                       **_example("harness pretrain resnet32 --epochs 3 --limit 512   # the backbone first",
                                  "harness cka --backbone results/checkpoints/resnet32-cifar10-valid.pt --archs 2 "
                                  "--epochs 1 --limit 512"))
    p.add_argument("--backbone", required=True, help="backbone checkpoint (harness pretrain)")
    p.add_argument("--archs", nargs="*", default=["3"],
                   help="one integer N = N random archs (default 3), or NB201 strings / network .pt files; "
                        "empty with --supernet = the supernet alone")
    p.add_argument("--supernet", action="store_true", help="also train an NB201 supernet (first-order DARTS)")
    p.add_argument("--n-eval", type=int, default=500, help="evaluation images (default 500)")
    p.add_argument("--eval-batch-size", type=int, default=250,
                   help="images per forward pass; the unbiased estimator's minibatch (default 250)")
    p.add_argument("--estimator", choices=CKA_ESTIMATORS, default=DEFAULT_ESTIMATOR,
                   help="eq1: the paper's Eq. (1) over all --n-eval images (default); unbiased_minibatch: "
                        "unbiased HSIC summed over minibatches (Nguyen et al. 2021)")
    p.add_argument("--keep-networks", action="store_true", help="save the trained networks next to the results")
    p.add_argument("--out", help="heatmap folder (default <results>/cka-heatmaps)")
    _add_data_args(p)
    p.set_defaults(func="cmd_cka")

    p = sub.add_parser("pretrain", parents=[common], help="pre-train a backbone (paper Table 6 recipe)",
                       **_example("harness pretrain resnet32 --epochs 3 --limit 512"))
    p.add_argument("backbone", help="resnet20, resnet32, resnet56 or resnet20-wide")
    p.add_argument("--out", help="checkpoint path (default results/checkpoints/<backbone>-<dataset>.pt); the run "
                                 "keeps its state in <out stem>.resume.pt after every epoch and a rerun continues it")
    p.add_argument("--mode", choices=MODES, help="precision and memory format (default: the device's fast mode, "
                                                 "bf16+channels_last where bf16 is native)")
    p.add_argument("--shortcut", choices=SHORTCUTS, default="avgpool_conv",
                   help="downsampling shortcut: avgpool_conv (NB201 reference, default), conv_bn (PyTorchCV), "
                        "zero_pad (He et al. option A)")
    _add_data_args(p)
    p.set_defaults(func="cmd_pretrain")

    p = sub.add_parser("data", help="datasets", **_example("harness data download cifar10 --root data"))
    dsub = p.add_subparsers(dest="data_command", required=True)
    d = dsub.add_parser("download", help="download and verify an official archive",
                        **_example("harness data download cifar10 --root data"))
    d.add_argument("name", help="cifar10 or cifar100")
    d.add_argument("--root", default="data", help="where to put it (default ./data)")
    d.add_argument("--url", help="mirror URL (default: the official one)")
    d.add_argument("--md5", help="expected MD5 (default: the official archive's)")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func="cmd_data_download")
    return ap
