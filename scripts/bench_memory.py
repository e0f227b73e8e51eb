"""Memory benchmark: Original NB201 network vs Tr-Net-5-5 (ResNet-32 prefix), paper Table 2.

For one training-mode forward + cross-entropy at batch 256 on 32x32 input, measures the bytes
autograd keeps for backward (``harness.measure.memory.saved_tensor_bytes``) for the
all-``nor_conv_3x3`` architecture and for 50 seeded random architectures; on a GPU also each
full step's ``max_memory_allocated``. Prints a summary and writes
``results/memory-nb201.parquet`` (one row per architecture, with provenance) and
``results/memory-nb201.md``, both atomically.

    .venv/bin/python scripts/bench_memory.py [--batch-size 256] [--n-random 50] [--seed 0] [--device cpu]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from harness.measure.memory import nb201_memory_rows, summarise_memory
from harness.store.files import write_parquet, write_text
from harness.runinfo import default_device, run_record

PAPER = "Paper Table 2 (GPU allocated memory, GTX 1080 Ti): Original 1.12 GB, Tr-Net-5-5 0.53 GB (2.11x)."
GIB = 2**30


def _md_table(df: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def summary_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Summary in GiB, rounded, for printing and the Markdown report."""
    out = pd.DataFrame({"architectures": summary["kind"], "n": summary["n_archs"]})
    for col in summary.columns:
        if col.endswith("_bytes"):
            out[col.replace("_bytes", "_GiB")] = (summary[col] / GIB).round(3)
    for col in ("saved_ratio", "cuda_peak_ratio"):
        if col in summary:
            out[col] = summary[col].round(3)
    return out


def markdown(rows: pd.DataFrame, summary: pd.DataFrame, record: dict, seconds: float) -> str:
    random = rows[rows["kind"] == "random"]
    spread = (f"Random-arch ratio range: {random['saved_ratio'].min():.3f} .. {random['saved_ratio'].max():.3f}."
              if len(random) else "")
    return "\n".join([
        "# Memory: Original NB201 network vs Tr-Net-5-5",
        "",
        f"Batch {int(rows['batch_size'].iloc[0])}, 32x32 input, 10 classes; Tr-Net-5-5 = ResNet-32 stem + blocks 1-5 "
        "(frozen, no_grad) + NB201 modules after search cell 5. `saved` = bytes autograd keeps for backward in one "
        "training-mode forward + cross-entropy (each storage once, parameters/buffers excluded); the all-conv row is "
        "`" + rows["arch"].iloc[0] + "`; the random row is the mean over seeded random architectures "
        "(ratio = ratio of the means). GiB = 2^30 bytes.",
        "",
        _md_table(summary_table(summary)),
        "",
        spread,
        "",
        PAPER + " The paper's figure is memory allocated on the GPU during training, which also holds the weights, "
        "gradients and the batch itself, so absolute numbers differ from saved-for-backward bytes; the ratio is "
        "the comparable part.",
        "",
        f"Provenance: commit `{record['commit']}`, device {record['device']}, torch {record['version_torch']}, "
        f"seed {record['seed']}; {seconds:.0f} s. Per-architecture rows: `memory-nb201.parquet`.",
        "",
    ])


def main(argv: "list[str] | None" = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--n-random", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    ap.add_argument("--out-dir", default="results")
    args = ap.parse_args(argv)
    device = str(args.device or default_device())

    start = time.perf_counter()
    rows = nb201_memory_rows(args.batch_size, args.n_random, args.seed, device)
    seconds = time.perf_counter() - start
    summary = summarise_memory(rows)
    record = run_record(args.seed, device)
    for key, value in record.items():
        rows[key] = value

    print(summary_table(summary).to_string(index=False))
    print(PAPER)
    out = Path(args.out_dir)
    write_parquet(rows, out / "memory-nb201.parquet")
    write_text(markdown(rows, summary, record, seconds), out / "memory-nb201.md")
    print(f"wrote {out / 'memory-nb201.parquet'} and {out / 'memory-nb201.md'} ({seconds:.0f} s)")
    return summary


if __name__ == "__main__":
    main()
