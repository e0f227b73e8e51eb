"""Build the shipped NB201 table and index order from ../shared/data (run once; outputs are committed).

    python scripts/build_nb201_table.py [--shared ../shared/data]

Writes
* ``harness/tabular/nb201.parquet`` -- one row per architecture (benchmark index order), zstd;
* ``harness/spaces/nb201/index.npy`` -- benchmark index -> op code (see ``harness.spaces.nb201.encoding``).

Floats are parsed with Python's correctly rounded ``float()``: the CSVs carry 17 significant
digits and round-trip float64 exactly; a lossy parse changes ties and so the rank correlations.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from harness.spaces.nb201 import encoding as nb201

ROOT = Path(__file__).resolve().parents[1]


def build(shared: Path) -> pd.DataFrame:
    def read(name: str) -> pd.DataFrame:
        df = pd.read_csv(shared / name, dtype=str)
        for col in df.columns:
            if col == "index":
                df[col] = df[col].astype(int)
            elif "String" not in col and col != "arch_str":
                df[col] = df[col].map(float).astype("float64")
        return df

    t12 = read("nb201_12ep_val_test.csv")
    mean = read("nb201_200ep_test_mean.csv")
    one = read("nb201_12ep_200ep_test_oneseed.csv")
    for df in (t12, mean, one):
        assert (df["index"].to_numpy() == np.arange(nb201.NUM_ARCHS)).all(), "rows must be in index order"
    assert (t12["arch_str"] == mean["ArchitectureString"]).all()
    assert (t12["arch_str"] == one["ArchitectureString"]).all()
    out = pd.DataFrame({"index": t12["index"].astype("int32"), "arch_str": t12["arch_str"],
                        "unique_str": mean["UniqueString"]})
    names = {"cifar10": ("cifar10", "CIFAR10", "Cifar10"),
             "cifar100": ("cifar100", "CIFAR100", "Cifar100"),
             "ImageNet16-120": ("imagenet", "ImageNet", "ImageNet16")}
    for ds, (a, b, c) in names.items():
        out[f"{ds}/val_acc@12"] = t12[f"{a}-val"]
        out[f"{ds}/test_acc@12"] = t12[f"{a}-test"]
        out[f"{ds}/test_acc@200"] = mean[f"{b}TestAccuracy200Epochs"]
        out[f"{ds}/test_acc_oneseed@12"] = one[f"{c}TestAccuracy12Epochs"]
        out[f"{ds}/test_acc_oneseed@200"] = one[f"{c}TestAccuracy200Epochs"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args()
    df = build(args.shared)
    codes = np.array([nb201.to_code(nb201.parse(s)) for s in df["arch_str"]], dtype=np.int16)
    assert len(np.unique(codes)) == nb201.NUM_ARCHS
    np.save(ROOT / "harness/spaces/nb201/index.npy", codes, allow_pickle=False)
    path = ROOT / "harness/tabular/nb201.parquet"
    df.to_parquet(path, compression="zstd", compression_level=19, index=False)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, {len(df)} rows, {len(df.columns)} columns)")


if __name__ == "__main__":
    main()
