"""Reports over the results tables: leaderboard (markdown), plots, CKA heatmaps.

:mod:`~harness.report.query` is the query layer both the leaderboard and the plots read through;
:func:`harness.report.refresh.refresh` rebuilds everything of a results folder.
"""
