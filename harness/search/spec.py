"""Kind ``search``'s definition: its keys, defaults and validation (the runner is
:mod:`harness.search.batch`; workers rebuild a study's definition with :data:`SPEC`).

Keys: ``datasets``, ``samplers``, ``budget``, ``seeds``, ``seed_offset``, ``workers``, ``proxies``
(each searched separately), ``[sampler_options.<sampler>]``, ``[train]``, ``[backbone]``,
``storage`` (a database URL or journal file shared by workers on many machines), ``delay_s``
(seconds each evaluation waits: emulates an expensive proxy).
"""
from __future__ import annotations

from harness import HarnessError
from harness.definition.schema import FLOAT, INT, LIST_STR, STR, TABLE, Definition, KindSpec
from harness.methods.samplers import SAMPLERS, make_sampler
from harness.sections.schema import BACKBONE_SCHEMA, TRAIN_SCHEMA, check_sections
from harness.sections.splices import check_splices
from harness.spaces import get_space

SCHEMA = {"datasets": LIST_STR, "samplers": LIST_STR, "budget": INT, "seeds": INT, "seed_offset": INT,
          "workers": INT, "proxies": LIST_STR, "sampler_options": {"*": TABLE}, "storage": STR, "delay_s": FLOAT,
          "train": TRAIN_SCHEMA, "backbone": BACKBONE_SCHEMA}
DEFAULTS = {"space": "nb201", "seeds": 1, "seed_offset": 0, "workers": 1, "proxies": ["nb201-12ep-val"],
            "sampler_options": {}, "train": {}, "backbone": {}}


def validate(d: Definition) -> None:
    check_sections(d)
    for s in d["samplers"]:
        d.one_of("samplers", s, SAMPLERS)
    if d.get("delay_s", 0) < 0:
        raise HarnessError(f"{d.source}: key 'delay_s' must be >= 0, got {d['delay_s']}")
    space = get_space(d["space"])
    for s, options in d["sampler_options"].items():
        d.one_of("sampler_options", s, SAMPLERS)
        try:
            make_sampler(s, 0, space, **options)  # an option the sampler does not take is an error
        except HarnessError as e:
            raise HarnessError(f"{d.source}: key 'sampler_options.{s}': {e}") from None
    check_splices(d)


SPEC = KindSpec("search", SCHEMA, DEFAULTS, validate, required=("datasets", "samplers", "budget"))
