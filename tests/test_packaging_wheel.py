"""The harness as a researcher installs it into their own environment: a wheel built from this source
tree, installed into a fresh virtual environment, run from an empty folder with no checkout on the
path. Every file the code loads next to itself must come along in the wheel, and nothing else."""
from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harness.store.results import ResultsStore

pytestmark = pytest.mark.slow  # builds a 34 MB wheel and trains one candidate

ROOT = Path(__file__).resolve().parents[1]
#: Suffixes of the files the code loads beside itself (``importlib.resources`` / ``Path(__file__)``):
#: the NB201 table, the embedded CIFAR-10 images, the split files, the NB201 index, the report's
#: reference numbers, and a shipped backbone with its metadata.
DATA_SUFFIXES = {".parquet", ".npz", ".txt", ".npy", ".toml", ".json", ".pt"}
#: A half-trained backbone state beside a shipped one: never released.
PARTIAL = ".resume.pt"
PRETRAINED = Path("backbones/pretrained")


def run(cmd, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kw)
    assert r.returncode == 0, f"{cmd} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def package_files(package: Path) -> set[str]:
    """The package's files as wheel names (``harness/...``), compiled bytecode left out."""
    return {f"harness/{p.relative_to(package).as_posix()}" for p in package.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def shipped(name: str) -> bool:
    return Path(name).suffix in DATA_SUFFIXES and not name.endswith(PARTIAL)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A copy of the source tree with a shipped backbone beside a half-trained state of it, as a
    pre-training run leaves them, so both globs of pyproject's package data are exercised."""
    src = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "harness", src / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    pretrained = src / "harness" / PRETRAINED
    pretrained.mkdir(exist_ok=True)
    (pretrained / "test-backbone.pt").write_bytes(b"weights")
    (pretrained / "test-backbone.json").write_text("{}\n")
    (pretrained / f"test-backbone{PARTIAL}").write_bytes(b"half-trained")
    return src


@pytest.fixture(scope="module")
def wheel(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: the build uses this environment's setuptools (torch needs >= 77.0.3,
    # the floor pyproject asks for) and reaches no index.
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", out, source])
    (path,) = out.glob("harness-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> dict:
    """A fresh virtual environment holding the wheel, with this environment's installed
    dependencies visible through a .pth file (no download), and an empty working folder. The
    environment sits in a git repository of its own, as a project's .venv does."""
    env_dir = tmp_path_factory.mktemp("venv")
    run(["git", "init", "-q", env_dir])
    run(["git", "-C", env_dir, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "a project"])
    run([sys.executable, "-m", "venv", "--without-pip", env_dir])
    python = env_dir / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel])
    purelib = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    # Written after the install, so pip never saw another harness (an editable one lives there).
    with zipfile.ZipFile(wheel) as z:
        metadata = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    names = [re.match(r"[A-Za-z0-9._-]+", line.split(":", 1)[1].strip()).group(0)
             for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    dirs = sorted({str(importlib.metadata.distribution(n).locate_file("")) for n in names})
    (purelib / "harness-test-dependencies.pth").write_text("\n".join(dirs) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(PATH=f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(env_dir),
               OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    cwd = tmp_path_factory.mktemp("empty")
    return {"python": python, "harness": env_dir / "bin" / "harness", "purelib": purelib, "env": env, "cwd": cwd}


def test_the_wheel_carries_every_data_file_and_nothing_else(source, wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    files = package_files(source / "harness")
    unknown = sorted(n for n in files if Path(n).suffix not in DATA_SUFFIXES | {".py"})
    assert not unknown, f"files of a new kind in harness/ (add the suffix here and the files to pyproject's package-data): {unknown}"
    expected = {n for n in files if n.endswith(".py") or shipped(n)}
    dist_info = {n for n in names if n.split("/", 1)[0].endswith(".dist-info")}
    assert names - dist_info == expected
    assert f"harness/{PRETRAINED.as_posix()}/test-backbone.pt" in names
    assert not [n for n in names if n.endswith(PARTIAL) or n.startswith(("tests/", "results/", "benchmarks/"))]


def test_the_installed_harness_is_the_wheel_not_the_source_tree(venv):
    r = run([venv["python"], "-c", "import harness, sys; print(harness.__file__); print(*sys.path, sep='\\n')"],
            cwd=venv["cwd"], env=venv["env"])
    where, *path = r.stdout.splitlines()
    assert Path(where).is_relative_to(venv["purelib"])
    assert not [p for p in path if p and Path(p).resolve() == ROOT]


def test_help_rank_and_train_run_from_an_empty_folder(venv):
    cwd, env = venv["cwd"], venv["env"]
    assert "usage: harness" in run([venv["harness"], "--help"], cwd=cwd, env=env).stdout
    run([venv["harness"], "rank", "--dataset", "cifar10", "--sample", "100", "--draws", "2"], cwd=cwd, env=env)
    run([venv["harness"], "train", "--arch", "1", "--epochs", "1", "--limit", "64", "--batch-size", "64",
         "--device", "cpu", "--quiet"], cwd=cwd, env=env)
    store = ResultsStore(cwd / "results")
    assert len(store.read("rank")) == 1
    train = store.read("train")
    assert train["arch_index"].tolist() == [1] and train["epochs"].tolist() == [1]
    assert train["commit"].tolist() == ["unknown"], "the commit of the repository around the environment"
