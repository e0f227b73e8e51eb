"""Proxy families by name, so rank and search benchmarks take proxies as plain strings.

A family is one way of writing proxy names (a prefix such as ``train:`` or ``zc:``, or a fixed set
of names such as the table proxies), the check of such a name, the factory of its proxies and what
callers ask of it (does it train, read images, borrow the backbone, score the whole table at once).
The built-in families are in :mod:`harness.proxies.families`; each has one
:func:`register_proxy_family` line in ``harness/proxies/__init__.py``. Definitions, rank and search
runs ask :func:`proxy_family` and never compare names themselves, so a new family needs nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Collection

from harness import HarnessError
from harness.proxies.base import Proxy
from harness.proxies.context import ProxyContext


def no_value(name: str) -> None:
    """The default of a family's per-name questions: nothing to say (no method, no Tr-Net, any space)."""
    return None


@dataclass(frozen=True)
class ProxyFamily:
    """One family of proxy names and what callers may ask about them.

    The flags are about every proxy of the family; the callables take one (checked) name."""

    name: str                                  # e.g. "table", "train", "recorded", "zero_cost"
    syntax: str                                # how its names are written, for the unknown-proxy error
    factory: Callable[[str, ProxyContext], Proxy]
    prefix: "str | None" = None                # names are ``<prefix><rest>``, e.g. "zc:" ...
    members: Collection[str] = ()              # ... or exactly these names (prefix None)
    check: Callable[[str], object] = no_value  # raises a HarnessError for a malformed name of the family
    trains: bool = False        # really trains candidates: needs training images, ranked on ``train_selections``
    recorded: bool = False      # replays earlier training runs (a run of kind ``train`` cannot record new ones)
    zero_cost: bool = False     # scored on ``sample`` random architectures without training
    needs_data: bool = False    # reads images (``train.data``)
    whole_table: bool = False   # its proxy's ``values()`` scores every architecture of the space's table at once
    torch_free: bool = False    # scoring never imports torch (search workers may skip loading it)
    method: Callable[[str], "str | None"] = no_value   # the training method (``original``, ``tr-net-i-j``)
    tr_net: Callable[[str], "str | None"] = no_value   # the ``tr-net-i-j`` whose backbone splice it builds
    space: Callable[[str], "str | None"] = no_value    # the one space whose table it reads (None: any)

    def matches(self, name: str) -> bool:
        if self.prefix is None:
            return isinstance(name, str) and name in self.members
        return isinstance(name, str) and name.startswith(self.prefix)

    def needs_backbone(self, name: str) -> bool:
        """Whether the proxy borrows the pre-trained backbone (a Tr-Net or its suffix)."""
        return self.tr_net(name) is not None


_FAMILIES: dict[str, ProxyFamily] = {}


def register_proxy_family(family: ProxyFamily) -> None:
    """Make ``family``'s names known to every benchmark; re-registering a name replaces it."""
    _FAMILIES[family.name] = family


def proxy_family(name: str) -> ProxyFamily:
    """The family of proxy ``name``, whose syntax it was checked against; an unknown name is an
    error listing every family's syntax."""
    for family in _FAMILIES.values():
        if family.matches(name):
            family.check(name)
            return family
    raise HarnessError(f"proxy {name!r}: unknown (known: {'; '.join(f.syntax for f in _FAMILIES.values())})")


def make_proxy(name: str, ctx: ProxyContext) -> Proxy:
    return proxy_family(name).factory(name, ctx)
