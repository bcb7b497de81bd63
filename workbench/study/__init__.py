"""A stored study read back: what it can optimise (the objectives registry), its schema (attribute keys,
settings), Pareto fronts for any device without retraining, what-if limits and filters after the search with
the reason every other trained trial is missing, noise-aware repeats, front comparisons, and the fingerprint
that keeps resumes honest.

Floor 4: reads what :mod:`workbench.search` wrote, through :mod:`workbench.storages`; costs with
:mod:`workbench.hardware`.
"""
from workbench.study.objectives import OBJECTIVES, Objective
from workbench.study.schema import Keys, StudySettings, arch_key
from workbench.study.stored import StoredStudy

__all__ = ["Keys", "OBJECTIVES", "Objective", "StoredStudy", "StudySettings", "arch_key"]
