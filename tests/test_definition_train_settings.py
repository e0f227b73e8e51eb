"""A definition's ``[train]`` section -> TrainSettings: the schema and the dataclass agree, and
train_settings builds exactly what the hand-written copy of every key used to build."""
import dataclasses

import pytest

from harness.bench.definitions import build_definition, kind_specs
from harness.proxies import TrainSettings
from harness.sections.context import train_settings
from harness.sections.schema import TRAIN_SCHEMA

FIELDS = {f.name for f in dataclasses.fields(TrainSettings)}
#: [train] keys that are no TrainSettings field: the number of random candidates a rank run trains
#: (read by the rank kind itself).
NOT_SETTINGS = {"archs"}

EVERY_KEY = {"data": "cifar10-jpeg", "dataset": "cifar10-valid", "device": "cpu", "limit": 64,
             "limits": {"train": 32, "valid": 16, "test": 8}, "batch_size": 16, "cutout": 8, "archs": 3,
             "epochs": {"original": 2}, "warmup": {"original": 1}, "on_miss": "error", "seed": 7,
             "cosine_period": "after_warmup", "network": {"C": 8, "N": 1}, "precision": "bf16",
             "channels_last": True, "compile": True}


def _rank(train: "dict | None" = None):
    """A rank definition; with ``train``, it ranks a trained proxy (so train.epochs.original is valid)."""
    raw = {"name": "t", "kind": "rank", "datasets": ["cifar10"]}
    if train is not None:
        raw.update(proxies=["train:original"], train={"archs": 2, **train})
    return build_definition(raw, "test")


def test_every_settings_field_is_a_train_key_and_back():
    # a field missing from the schema could never be set from a definition; a schema key that is
    # no field would be dropped silently by train_settings
    assert FIELDS <= set(TRAIN_SCHEMA)
    assert set(TRAIN_SCHEMA) - FIELDS == NOT_SETTINGS
    for kind, schema in ((name, spec.schema) for name, spec in kind_specs().items()):
        if "train" in schema:
            assert set(schema["train"]) <= FIELDS | NOT_SETTINGS, kind


def test_every_key_is_set_in_the_full_definition():
    assert set(EVERY_KEY) == set(TRAIN_SCHEMA)


@pytest.mark.parametrize("kind", ["rank", "cka"])
def test_default_definition(kind):
    defn = _rank() if kind == "rank" else build_definition({"name": "t", "kind": "cka"}, "test")
    assert train_settings(defn) == TrainSettings(
        data="embedded", dataset=None, device=None, limit=None, limits={}, batch_size=None, cutout=None,
        epochs={}, warmup={}, on_miss="train", seed=0, cosine_period=None, network={}, precision=None,
        channels_last=None)


def test_definition_setting_every_key():
    defn = _rank(EVERY_KEY)
    got = train_settings(defn)
    assert got == TrainSettings(
        data="cifar10-jpeg", dataset="cifar10-valid", device="cpu", limit=64,
        limits={"train": 32, "valid": 16, "test": 8}, batch_size=16, cutout=8, epochs={"original": 2},
        warmup={"original": 1}, on_miss="error", seed=7, cosine_period="after_warmup",
        network={"C": 8, "N": 1}, precision="bf16", channels_last=True, compile=True)
    for key in ("limits", "epochs", "warmup", "network"):  # copies: the settings never share the definition's tables
        assert getattr(got, key) is not defn["train"][key]


def test_limit_zero_means_all_images():
    assert train_settings(_rank({"limit": 0})).limit is None


def test_oneshot_train_section():
    defn = build_definition({"name": "t", "kind": "oneshot", "train": {"data": "embedded", "device": "cpu",
                                                                       "limit": 10}}, "test")
    assert train_settings(defn) == TrainSettings(data="embedded", device="cpu", limit=10)
