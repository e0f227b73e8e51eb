"""The official NAS-Bench-201 / NATS-Bench backends. The real APIs need their packages and files,
which this machine lacks, so the key mapping is checked against a fake API that records calls;
the comparison with the real files runs where a user points an environment variable at them."""
import importlib.util
import os

import numpy as np
import pytest

from harness import HarnessError
from harness.spaces.nb201 import encoding as nb201
from harness.tabular import TabularBenchmark, get_table, official
from harness.tabular.nb201 import DATASETS, METRICS

N = nb201.NUM_ARCHS
KEY_VALUE = {"valid-accuracy": 0.25, "test-accuracy": 0.5}  # fake value = index + this + seed / 1e4

#: Every column -> (API dataset name, info key, hp, is_random) with the default seed choice
#: (smallest seed the fake lists: 111 at hp='12', 777 at hp='200').
EXPECTED = {
    ("cifar10", "val_acc", 12): ("cifar10-valid", "valid-accuracy", "12", False),
    ("cifar10", "test_acc", 12): ("cifar10", "test-accuracy", "12", False),
    ("cifar10", "test_acc", 200): ("cifar10", "test-accuracy", "200", False),
    ("cifar10", "test_acc_oneseed", 12): ("cifar10", "test-accuracy", "12", 111),
    ("cifar10", "test_acc_oneseed", 200): ("cifar10", "test-accuracy", "200", 777),
    ("cifar100", "val_acc", 12): ("cifar100", "valid-accuracy", "12", False),
    ("cifar100", "test_acc", 12): ("cifar100", "test-accuracy", "12", False),
    ("cifar100", "test_acc", 200): ("cifar100", "test-accuracy", "200", False),
    ("cifar100", "test_acc_oneseed", 12): ("cifar100", "test-accuracy", "12", 111),
    ("cifar100", "test_acc_oneseed", 200): ("cifar100", "test-accuracy", "200", 777),
    ("ImageNet16-120", "val_acc", 12): ("ImageNet16-120", "valid-accuracy", "12", False),
    ("ImageNet16-120", "test_acc", 12): ("ImageNet16-120", "test-accuracy", "12", False),
    ("ImageNet16-120", "test_acc", 200): ("ImageNet16-120", "test-accuracy", "200", False),
    ("ImageNet16-120", "test_acc_oneseed", 12): ("ImageNet16-120", "test-accuracy", "12", 111),
    ("ImageNet16-120", "test_acc_oneseed", 200): ("ImageNet16-120", "test-accuracy", "200", 777),
}


class FakeMeta:
    def __init__(self, seeds):
        self.seeds = seeds

    def get_dataset_seeds(self, dataset):
        return list(self.seeds)


class FakeAPI:
    """The two calls the backend makes, with NB201's signatures; records every look-up."""

    def __init__(self, seeds=None):
        self.seeds = seeds or {"12": [111], "200": [999, 777, 888]}  # per hp, deliberately unsorted
        self.calls = []

    def query_meta_info_by_index(self, arch_index, hp="12"):
        seeds = self.seeds[hp]
        return FakeMeta(seeds(arch_index) if callable(seeds) else seeds)

    def get_more_info(self, index, dataset, iepoch=None, hp="12", is_random=True):
        assert is_random is not True, "a random seed per call is not reproducible"
        self.calls.append((index, dataset, iepoch, hp, is_random))
        seed = 0 if is_random is False else is_random
        return {"valid-accuracy": index + 0.25 + seed / 1e4, "test-accuracy": index + 0.5 + seed / 1e4}


def test_expected_covers_every_column():
    assert set(EXPECTED) == {(d, m, e) for d in DATASETS for m, eps in METRICS.items() for e in eps}


@pytest.mark.parametrize("column", sorted(EXPECTED))
def test_key_mapping(column):
    api_dataset, key, hp, is_random = EXPECTED[column]
    assert official.api_query(*column) == (api_dataset, key, hp, is_random is not False)
    api = FakeAPI()
    table = official.from_api(api, "fake.pth")
    values = table.column(*column)
    assert [c[0] for c in api.calls] == list(range(N))
    assert {c[1:] for c in api.calls} == {(api_dataset, None, hp, is_random)}
    np.testing.assert_array_equal(values, np.arange(N) + KEY_VALUE[key] + (is_random or 0) / 1e4)
    assert not values.flags.writeable
    table.column(*column)
    assert len(api.calls) == N  # fetched once, then cached


def test_one_seed_column_is_reproducible_and_recorded():
    a, b = official.from_api(FakeAPI(), "fake.pth"), official.from_api(FakeAPI(), "fake.pth")
    np.testing.assert_array_equal(a.column("cifar100", "test_acc_oneseed", 200),
                                  b.column("cifar100", "test_acc_oneseed", 200))
    assert a.source == "fake.pth#oneseed=smallest"
    assert a.metadata == {"oneseed_seeds": official.SMALLEST_SEED}
    assert isinstance(a, TabularBenchmark) and a.space == "nb201"


def test_smallest_seed_is_per_architecture():
    # Architecture 5 was trained without seed 777 at hp='200': its smallest seed is 888.
    api = FakeAPI({"12": [111], "200": lambda i: [999, 888] if i == 5 else [888, 777, 999]})
    official.from_api(api, "fake.pth").column("cifar10", "test_acc_oneseed", 200)
    seeds = [c[4] for c in api.calls]
    assert seeds[5] == 888 and set(seeds[:5] + seeds[6:]) == {777}


def test_pinned_seed():
    api = FakeAPI()
    table = official.from_api(api, "fake.pth", oneseed_seeds={200: 999})
    assert table.source == "fake.pth#oneseed=200:999"
    assert table.metadata == {"oneseed_seeds": {200: 999}}
    table.column("ImageNet16-120", "test_acc_oneseed", 200)
    table.column("ImageNet16-120", "test_acc_oneseed", 12)  # no pin for 12 epochs: smallest seed
    assert {c[3:] for c in api.calls} == {("200", 999), ("12", 111)}


def test_pinned_seed_missing_names_the_architecture():
    api = FakeAPI({"12": [111], "200": lambda i: [888] if i == 3 else [777, 888]})
    table = official.from_api(api, "fake.pth", oneseed_seeds={200: 777})
    with pytest.raises(HarnessError, match=r"fake.pth: architecture 3 has no 'cifar10' run with seed 777 "
                                           r"at hp=200 \(seeds: \[888\]\)"):
        table.column("cifar10", "test_acc_oneseed", 200)


@pytest.mark.parametrize("seeds, msg", [
    ({100: 777}, "oneseed_seeds epochs 100: test_acc_oneseed is recorded after"),
    ({200: True}, r"oneseed_seeds\[200\] = True: expected a seed number"),
    ({200: "777"}, r"oneseed_seeds\[200\] = '777': expected a seed number"),
])
def test_bad_seed_choice_names_the_input(seeds, msg):
    with pytest.raises(HarnessError, match=msg):
        official.from_api(FakeAPI(), "fake.pth", oneseed_seeds=seeds)


def test_missing_file_is_clear():
    with pytest.raises(HarnessError, match="does not exist"):
        get_table("nb201", "/nonexistent/NAS-Bench-201-v1_1-096897.pth")
    with pytest.raises(HarnessError, match="does not exist"):
        official.load("/nonexistent/NATS-tss-v1_0-3ffb9-simple")


def test_unknown_file_kind_is_clear(tmp_path):
    (p := tmp_path / "bench.bin").write_bytes(b"")
    with pytest.raises(HarnessError, match="expected a .parquet table, a NAS-Bench-201 '.pth' file"):
        get_table("nb201", p)


@pytest.mark.parametrize("name, package, hint", [
    ("NAS-Bench-201-v1_1-096897.pth", "nas_201_api", "nas-bench-201"),
    ("NATS-tss-v1_0-3ffb9-simple", "nats_bench", "nats_bench"),
])
def test_missing_optional_package_is_clear(tmp_path, name, package, hint):
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed")
    (p := tmp_path / name).write_bytes(b"")
    with pytest.raises(HarnessError, match=f"needs the optional package {hint}"):
        get_table("nb201", p)


@pytest.mark.parametrize("env", ["HARNESS_NB201_API_FILE", "HARNESS_NATS_TSS_FILE"])
def test_official_backend_matches_shipped_table(env):
    """Runs where a user owns the official file and points the variable at it."""
    path = os.environ.get(env)
    if not path:
        pytest.skip(f"{env} not set: the official benchmark file is not on this machine")
    shipped, real = get_table("nb201"), get_table("nb201", path)
    assert real.source.startswith(path) and real.metadata["oneseed_seeds"] == official.SMALLEST_SEED
    for ds in DATASETS:
        np.testing.assert_allclose(real.column(ds, "val_acc", 12), shipped.column(ds, "val_acc", 12), atol=1e-6)
        np.testing.assert_allclose(real.ground_truth(ds), shipped.ground_truth(ds), atol=1e-6)
        one = real.column(ds, "test_acc_oneseed", 200)
        np.testing.assert_array_equal(one, get_table("nb201", path).column(ds, "test_acc_oneseed", 200))
