"""Zero-cost proxies (``zc:<measure>``, ``zc:<measure>@tr-net-<i>-<j>``): one package.

:mod:`~harness.proxies.zero_cost.measures` holds the measures and the proxy that runs one;
:mod:`~harness.proxies.zero_cost.joint` scores every measure of an architecture in one evaluation;
:mod:`~harness.proxies.zero_cost.trnet` the Tr-Net suffix a ``@tr-net-i-j`` measure sees. The
``rank`` kind's use of them: :mod:`harness.bench.kinds.rank_zero_cost`; their rows: the ``zero_cost``
table.
"""
