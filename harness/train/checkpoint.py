"""Checkpoints of trained candidate networks (NB201), reused by later CKA runs.

File format (``torch.save``): ``{"format", "arch", "num_classes", "C", "N", "meta", "state_dict"}``;
loaded with ``weights_only=True`` so a checkpoint can never run code.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from harness import HarnessError
from harness.spaces.nb201.network import NB201Network
from harness.store.files import write_atomic

NETWORK_FORMAT = "harness-nb201-v1"


def save_network(path: "str | Path", model: NB201Network, meta: "dict | None" = None) -> Path:
    """Write a trained :class:`NB201Network` atomically; ``meta`` must be JSON-serialisable."""
    meta = dict(meta or {})
    try:
        json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise HarnessError(f"network checkpoint meta for {path}: must be JSON-serialisable ({exc})") from None
    payload = {"format": NETWORK_FORMAT, "arch": model.arch_str, "num_classes": model.num_classes,
               "C": model.C, "N": model.N, "meta": meta,
               "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
    return write_atomic(path, lambda tmp: torch.save(payload, tmp))


def load_network(path: "str | Path") -> tuple[NB201Network, dict]:
    """Read a checkpoint of :func:`save_network` -> (network on the CPU, eval mode; meta)."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"network checkpoint {path}: no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the weights-only unpickler raises many kinds
        raise HarnessError(f"network checkpoint {path}: not a readable torch checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != NETWORK_FORMAT:
        raise HarnessError(f"network checkpoint {path}: not an NB201 network checkpoint (format {NETWORK_FORMAT!r})")
    fields = ("arch", "num_classes", "C", "N", "state_dict")
    if any(k not in payload for k in fields) or not isinstance(payload["state_dict"], dict):
        raise HarnessError(f"network checkpoint {path}: incomplete (needs {', '.join(fields)})")
    model = NB201Network(payload["arch"], num_classes=payload["num_classes"], C=payload["C"], N=payload["N"])
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HarnessError(f"network checkpoint {path}: weights do not fit {payload['arch']} ({first})") from None
    model.eval()
    return model, dict(payload.get("meta") or {})
