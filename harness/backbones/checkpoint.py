"""Backbone checkpoints: save a trained CifarResNet, load it back with every mismatch reported.

File format (``torch.save``): ``{"format": FORMAT, "name": backbone name, "num_classes": int, "shortcut",
"state_dict": {key: tensor}, "meta": {JSON-able}}``. Loading uses ``weights_only=True`` so a
checkpoint can never run code.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from harness import HarnessError
from harness.backbones.resnet import BACKBONES, SHORTCUTS, CifarResNet, build_backbone
from harness.store.files import write_atomic

FORMAT = "harness-backbone-v1"
_SHOW = 5  # offending keys listed in an error


def save_backbone(path: "str | Path", model: CifarResNet, name: str, meta: "dict | None" = None) -> Path:
    """Write ``model``'s weights as backbone ``name`` atomically (temp file + rename)."""
    if name not in BACKBONES:
        raise HarnessError(f"backbone {name!r}: unknown (known: {', '.join(BACKBONES)})")
    meta = dict(meta or {})
    try:
        json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise HarnessError(f"checkpoint meta for {path}: must be JSON-serialisable ({exc})") from None
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "name": name, "num_classes": int(model.classifier.out_features),
               "shortcut": model.shortcut,
               "state_dict": state, "meta": meta}
    return write_atomic(path, lambda tmp: torch.save(payload, tmp))


def _mismatches(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> list[str]:
    problems = []
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    wrong = [f"{k} {tuple(got[k].shape)} (expected {tuple(v.shape)})"
             for k, v in expected.items() if k in got and tuple(got[k].shape) != tuple(v.shape)]
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong)):
        if items:
            more = f" ... (+{len(items) - _SHOW} more)" if len(items) > _SHOW else ""
            problems.append(f"{label}: {', '.join(items[:_SHOW])}{more}")
    return problems


def load_backbone(path: "str | Path", expect: "str | None" = None) -> tuple[CifarResNet, dict]:
    """Read a checkpoint written by :func:`save_backbone` -> (model on the CPU, eval mode; meta).

    ``expect``: the backbone name the caller needs; a checkpoint of another backbone is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"backbone checkpoint {path}: no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any failure to parse (the weights-only unpickler raises many kinds)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HarnessError(f"backbone checkpoint {path}: not a readable torch checkpoint ({first_line})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise HarnessError(f"backbone checkpoint {path}: not a harness backbone checkpoint "
                           f"(expected a dict with format {FORMAT!r})")
    name, state = payload.get("name"), payload.get("state_dict")
    if name not in BACKBONES:
        raise HarnessError(f"backbone checkpoint {path}: unknown backbone {name!r} (known: {', '.join(BACKBONES)})")
    if expect is not None and name != expect:
        raise HarnessError(f"backbone checkpoint {path}: holds {name!r}, expected {expect!r}")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise HarnessError(f"backbone checkpoint {path}: state_dict missing or not a dict of tensors")
    num_classes = payload.get("num_classes")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise HarnessError(f"backbone checkpoint {path}: bad num_classes {num_classes!r}")
    shortcut = payload.get("shortcut", "avgpool_conv")  # checkpoints before the option: the default
    if shortcut not in SHORTCUTS:
        raise HarnessError(f"backbone checkpoint {path}: unknown shortcut {shortcut!r} (known: {', '.join(SHORTCUTS)})")
    model = build_backbone(name, num_classes, shortcut)
    problems = _mismatches(model.state_dict(), state)
    if problems:
        raise HarnessError(f"backbone checkpoint {path} does not fit {name}: " + "; ".join(problems))
    model.load_state_dict(state)
    model.eval()
    meta = payload.get("meta") or {}
    return model, dict(meta)


