"""Search spaces: what a candidate is (see :mod:`harness.spaces.base` for the protocol)."""
from harness.spaces.base import Arch, SearchSpace, is_complete, suggest
from harness.spaces.darts.space import DartsSpace
from harness.spaces.nb201.space import NB201Space
from harness.spaces.registry import dataset_order, get_space, register_space, space_names

register_space("nb201", NB201Space)
register_space("darts", DartsSpace)

__all__ = ["Arch", "DartsSpace", "NB201Space", "SearchSpace", "dataset_order", "get_space", "is_complete",
           "register_space", "space_names", "suggest"]
