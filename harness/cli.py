"""Command line: a thin shell over the library. Bad input -> one line on stderr, exit code 2."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from harness import HarnessError

RESULTS = Path("results")


def _print_table(df: pd.DataFrame, cols: list[str]) -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4f}".format):
        print(df[cols].to_string(index=False))


def cmd_rank(args: argparse.Namespace) -> pd.DataFrame:
    """Rank correlation of table proxies vs the 200-epoch ground truth; appends to results/rank.parquet."""
    from harness.analysis.rank import rank_table_proxy
    from harness.store.files import append_parquet
    from harness.runinfo import run_record
    from harness.tabular.nb201 import NB201Table, iter_datasets

    table = NB201Table.load(args.benchmark)
    rows = []
    for ds in iter_datasets(args.dataset):
        for proxy in args.proxy:
            if args.sample is not None or args.top_k is None:
                r = rank_table_proxy(table, ds, proxy, sample=args.sample, draws=args.draws, seed=args.seed)
                rows.append(r.row())
            if args.top_k is not None:
                r = rank_table_proxy(table, ds, proxy, top=args.top_k, ties=args.ties, seed=args.seed)
                rows.append({**r.row(), "ties": args.ties})
    df = pd.DataFrame(rows)
    df["truth"] = "test_acc@200"
    df["benchmark"] = table.source
    prov = run_record(seed=args.seed)
    for k, v in prov.items():
        if k != "seed":
            df[k] = v
    _print_table(df, ["dataset", "proxy", "selection", "n", "draws", "krocc", "krocc_std", "srocc", "srocc_std"])
    out = append_parquet(df, Path(args.results) / "rank.parquet")
    print(f"appended {len(df)} rows to {out}")
    return df


def cmd_bench(args: argparse.Namespace) -> None:
    """Run benchmark definition files, then refresh the leaderboard and plots."""
    from harness.bench.definition import load_definition
    from harness.bench.runner import run_benchmark

    overrides = {"seeds": args.seeds, "budget": args.budget, "workers": args.workers,
                 "train": {"archs": args.train_archs} if args.train_archs is not None else None}
    defs = [load_definition(p, full=args.full, overrides=overrides) for p in args.definitions]  # all valid first
    for d in defs:
        df = run_benchmark(d, args.results, progress=not args.quiet)
        if d["kind"] == "rank":
            _print_table(df, ["dataset", "proxy", "selection", "n", "draws", "krocc", "krocc_std", "srocc", "srocc_std"])
    _refresh(args.results)


def _refresh(results: str) -> None:
    from harness.report.leaderboard import refresh

    for path in refresh(results):
        print(f"wrote {path}")


def cmd_leaderboard(args: argparse.Namespace) -> None:
    """Rebuild results/leaderboard.md and the plots from the Parquet files, running nothing."""
    _refresh(args.results)


def cmd_train(args: argparse.Namespace) -> None:
    """Train one NB201 candidate as Original or Tr-Net-i-j; append the row to results/train.parquet."""
    from harness.data.datasets import load_dataset
    from harness.store.files import append_parquet
    from harness.runinfo import default_device
    from harness.proxies.training import default_config, train_candidate

    cfg = default_config(args.method).with_(epochs=args.epochs, warmup_epochs=args.warmup, batch_size=args.batch_size,
                                            cutout=args.cutout, amp=args.amp or None,
                                            channels_last=args.channels_last or None)
    data = load_dataset(args.dataset, data_dir=args.data_dir, npz=args.npz, device=args.device or default_device(), limit=args.limit)
    if args.transfer == "auto":
        from harness.train.recipe import ORIGINAL, TR_NET
        from harness.analysis.autotransfer import train_auto_transfer

        if not args.backbone:
            raise HarnessError("--transfer auto needs --backbone (the checkpoint whose blocks are transferred)")
        cfg = TR_NET.with_(epochs=args.epochs, warmup_epochs=args.warmup, batch_size=args.batch_size,
                           cutout=args.cutout, amp=args.amp or None, channels_last=args.channels_last or None)
        row = train_auto_transfer(args.arch, data, backbone=args.backbone, cfg=cfg, threshold=args.transfer_threshold,
                                  cka=args.cka, n_archs=args.cka_archs, cka_cfg=ORIGINAL.with_(epochs=args.cka_epochs),
                                  cka_out=Path(args.results) / "cka-auto", seed=args.seed, progress=not args.quiet)
        print(f"transfer auto: chose {row['method']} (CKA {row['transfer_cka']:.3f} >= {args.transfer_threshold})")
    else:
        row = train_candidate(args.arch, args.method, data, cfg=cfg, backbone=args.backbone, seed=args.seed,
                              progress=not args.quiet)
    out = append_parquet([row], Path(args.results) / "train.parquet")
    mem = (f"peak CUDA {row['peak_cuda_bytes'] / 2**20:.1f} MiB" if row["peak_cuda_bytes"] is not None
           else f"peak RSS {row['peak_rss_bytes'] / 2**20:.0f} MiB")
    val = "n/a" if row["val_acc"] is None else f"{row['val_acc']:.2f}%"
    print(f"{row['method']} {row['arch_str']} on {row['dataset']} ({row['data_source']}, {row['n_train']} train images)\n"
          f"  val {val}  test {row['test_acc']:.2f}%  {row['epochs']} epochs in {row['wall_s']:.1f} s "
          f"({row['images_per_s']:.0f} img/s)\n  saved for backward {row['saved_bytes'] / 2**20:.1f} MiB  {mem}  "
          f"trainable params {row['trainable_params']:,} of {row['params']:,}  device {row['device']}\n"
          f"appended to {out}")


def cmd_pretrain(args: argparse.Namespace) -> None:
    """Pre-train a backbone (paper Table 6 recipe) and save its checkpoint."""
    from harness.data.datasets import load_dataset
    from harness.runinfo import default_device
    from harness.backbones.pretrain import default_checkpoint_path, pretrain
    from harness.train.recipe import BACKBONE

    data = load_dataset(args.dataset, data_dir=args.data_dir, npz=args.npz, device=args.device or default_device(), limit=args.limit)
    out = args.out or default_checkpoint_path(args.results, args.backbone, data.name)
    cfg = BACKBONE.with_(epochs=args.epochs, batch_size=args.batch_size)
    meta = pretrain(args.backbone, data, out, cfg=cfg, seed=args.seed, progress=not args.quiet)
    val = "n/a" if meta["val_acc"] is None else f"{meta['val_acc']:.2f}%"
    print(f"{args.backbone} on {data.name} ({meta['n_train']} train images, {cfg.epochs} epochs, "
          f"{meta['wall_s']:.1f} s): val {val} test {meta['test_acc']:.2f}%\nwrote {out}")


def cmd_cka(args: argparse.Namespace) -> None:
    """CKA of backbone blocks vs NB201 cells (paper Figs. 1/2): Parquet + heatmaps under results/cka."""
    from harness.analysis.similarity import run_cka
    from harness.data.datasets import load_dataset
    from harness.runinfo import default_device
    from harness.train.recipe import ORIGINAL

    archs = None if not args.archs else (
        int(args.archs[0]) if len(args.archs) == 1 and args.archs[0].isdigit() else args.archs)
    cfg = ORIGINAL.with_(epochs=args.epochs, batch_size=args.batch_size)
    data = load_dataset(args.dataset, data_dir=args.data_dir, npz=args.npz, device=args.device or default_device(),
                        limit=args.limit)
    out = Path(args.out) if args.out else Path(args.results) / "cka"
    r = run_cka(args.backbone, archs, data, out_dir=out, n_eval=args.n_eval, batch_size=args.eval_batch_size,
                train_cfg=cfg, seed=args.seed, supernet=args.supernet, keep_networks=args.keep_networks,
                progress=not args.quiet)
    for name, arch in zip(r.names, r.archs):
        print(f"{name}: {arch}")
    print("mean CKA on the diagonal: " + " ".join(f"{r.mean[k, k]:.2f}" for k in range(min(r.mean.shape))))
    print(f"wrote {r.parquet_path}\nwrote " + "\nwrote ".join(map(str, r.png_paths)))


def cmd_data_download(args: argparse.Namespace) -> None:
    from harness.data.download import download

    path = download(args.name, args.root, url=args.url, md5=args.md5, progress=not args.quiet)
    print(f"{args.name} ready in {path} (use --data-dir {path})")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="cifar10-valid", help="cifar10-valid (default), cifar10, cifar100, ImageNet16-120")
    p.add_argument("--data-dir", help="folder with the official archives (default: embedded 5k CIFAR-10 images)")
    p.add_argument("--npz", help="a .npz with uint8 x_train/y_train/x_test/y_test (NHWC)")
    p.add_argument("--limit", type=int, help="use only the first N images of each split (tiny runs)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    from harness.analysis.rank import TABLE_PROXIES, TIES

    ap = argparse.ArgumentParser(prog="harness", description="Benchmark harness for Transfer-NAS (TR-NAS).")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--results", default=str(RESULTS), help="results folder (default: ./results)")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("rank", parents=[common], help="rank correlation of a proxy vs NB201's 200-epoch test accuracy")
    p.add_argument("--proxy", nargs="+", default=["nb201-12ep-val"],
                   help=f"table proxies: {', '.join(TABLE_PROXIES)} (default: nb201-12ep-val = 'Original')")
    p.add_argument("--dataset", nargs="+", default=["all"], help="cifar10 cifar100 ImageNet16-120 or all")
    p.add_argument("--sample", type=int, help="architectures per random draw (default: all when no --top-k)")
    p.add_argument("--draws", type=int, default=20, help="random draws to average (default 20)")
    p.add_argument("--top-k", type=int, help="also rank the top-k by ground truth")
    p.add_argument("--ties", choices=TIES, default="drop", help="top-k boundary ties (default: drop)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--benchmark", help="table: shipped (default), a .parquet, or an official NB201/NATS file")
    p.set_defaults(func=cmd_rank)

    p = sub.add_parser("bench", parents=[common], help="run benchmark definition files (benchmarks/*.toml)")
    p.add_argument("definitions", nargs="+", help="TOML files, e.g. benchmarks/nb201-rea.toml")
    p.add_argument("--full", action="store_true", help="apply each file's [full] table (full-size, GPU)")
    p.add_argument("--seeds", type=int, help="override the number of seeds")
    p.add_argument("--budget", type=int, help="override the query budget")
    p.add_argument("--workers", type=int, help="processes sharing one Optuna journal per study (tabular)")
    p.add_argument("--train-archs", type=int, help="rank benchmarks: also train this many random archs per method")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("leaderboard", parents=[common], help="rebuild leaderboard.md and plots from results/")
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("train", parents=[common], help="train one NB201 candidate (Original or Tr-Net-i-j)")
    p.add_argument("--arch", required=True, help="NB201 string or benchmark index")
    p.add_argument("--method", default="original", help="original (default) or tr-net-<i>-<j>, e.g. tr-net-5-5")
    p.add_argument("--backbone", help="pre-trained backbone checkpoint (needed by tr-net methods)")
    p.add_argument("--warmup", type=int, help="LR warmup epochs (default 0 Original, 13 Tr-Net)")
    p.add_argument("--cutout", type=int, help="Cutout length (default 0 = off)")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA only)")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format (CUDA only)")
    p.add_argument("--transfer", choices=["auto"], help="auto: choose i, j from CKA (overrides --method)")
    p.add_argument("--transfer-threshold", type=float, default=0.9, help="CKA every pair on the path must reach")
    p.add_argument("--cka", help="an existing cka.parquet to choose from (default: run a small CKA first)")
    p.add_argument("--cka-archs", type=int, default=3, help="architectures in that small CKA (default 3)")
    p.add_argument("--cka-epochs", type=int, default=12, help="their training epochs (default 12)")
    _add_data_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("cka", parents=[common], help="CKA of backbone blocks vs NB201 cells (paper Figs. 1/2)")
    p.add_argument("--backbone", required=True, help="backbone checkpoint (harness pretrain)")
    p.add_argument("--archs", nargs="*", default=["3"],
                   help="one integer N = N random archs (default 3), or NB201 strings / network .pt files; "
                        "empty with --supernet = the supernet alone")
    p.add_argument("--supernet", action="store_true", help="also train an NB201 supernet (first-order DARTS)")
    p.add_argument("--n-eval", type=int, default=500, help="evaluation images (default 500)")
    p.add_argument("--eval-batch-size", type=int, default=250, help="minibatch CKA batch size (default 250)")
    p.add_argument("--keep-networks", action="store_true", help="save the trained networks next to the results")
    p.add_argument("--out", help="output folder (default <results>/cka)")
    _add_data_args(p)
    p.set_defaults(func=cmd_cka)

    p = sub.add_parser("pretrain", parents=[common], help="pre-train a backbone (paper Table 6 recipe)")
    p.add_argument("backbone", help="resnet20, resnet32, resnet56 or resnet20-wide")
    p.add_argument("--out", help="checkpoint path (default results/checkpoints/<backbone>-<dataset>.pt)")
    _add_data_args(p)
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("data", help="datasets")
    dsub = p.add_subparsers(dest="data_command", required=True)
    d = dsub.add_parser("download", help="download and verify an official archive")
    d.add_argument("name", help="cifar10 or cifar100")
    d.add_argument("--root", default="data", help="where to put it (default ./data)")
    d.add_argument("--url", help="mirror URL (default: the official one)")
    d.add_argument("--md5", help="expected MD5 (default: the official archive's)")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=cmd_data_download)
    return ap


def main(argv: "list[str] | None" = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "arch", None) is not None and args.arch.isdigit():
        args.arch = int(args.arch)
    try:
        args.func(args)
    except HarnessError as e:
        print(f"harness {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
