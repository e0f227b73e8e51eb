"""Query-based search over NB201 with Optuna (issue 5).

``space`` maps NB201 cells to 6 Optuna categorical params, ``samplers`` provides Regularized
Evolution next to Optuna's random and TPE samplers, ``workers`` runs one study to an exact
trial budget from many processes sharing one storage.
"""
