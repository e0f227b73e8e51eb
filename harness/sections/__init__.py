"""What definitions of several kinds share, below the kinds that use them: the ``[train]`` and
``[backbone]`` sections, the proxy and dataset lists and the Tr-Net depths they name (their schema
and validation, :mod:`harness.sections.schema`, :mod:`harness.sections.splices`), and what a run
builds from them (proxy contexts, each row's provenance: :mod:`harness.sections.context`)."""
