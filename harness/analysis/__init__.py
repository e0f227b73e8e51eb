"""Analyses over benchmark tables and trained networks: rank correlation, CKA."""
