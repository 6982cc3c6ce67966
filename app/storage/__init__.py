"""Persistence of plans: the table definitions, the two lossless codecs and the plan store.

Nothing outside this package builds ``plan_series`` rows or artifact documents (ARCHITECTURE.md).
"""
