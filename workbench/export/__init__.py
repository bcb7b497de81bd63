"""From a trial to deployable files: the per-format writers and runners (:mod:`.formats`), the trial
export that verifies each file by running it (:mod:`.trial`), its manifest, and where the weights come from.

Floor 6: above the study and the search (an export is *of* a stored trial).
"""
from workbench.export.trial import ExportResult, export_model, export_trial, summary_lines, trial_folder

__all__ = ["ExportResult", "export_model", "export_trial", "summary_lines", "trial_folder"]
