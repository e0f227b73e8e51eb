"""Reports over the results tables: the leaderboard (summary, detail pages, figures, CSV / LaTeX), plots, CKA
heatmaps, Table 1.

The top layer under the CLI: it only renders. It reads through :mod:`harness.store.tables` and the
search rules of :mod:`harness.search.summary`; :func:`harness.report.refresh.refresh` rebuilds
everything of a results folder.
"""
