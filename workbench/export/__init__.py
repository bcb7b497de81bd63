"""From a trial to deployable files: the per-format writers and runners (:mod:`.formats`), the trial
export that verifies each file by running it (:mod:`.trial`), its manifest, and where the weights come from.

Floor 6: above the study and the search (an export is *of* a stored trial). The trial export's names are
reached from here on first use, so importing :mod:`.formats` (the CLI's ``--format`` choices) stays light.
"""
TRIAL_API = ("ExportResult", "export_model", "export_trial", "summary_lines", "trial_folder")


def __getattr__(name: str):
    if name in TRIAL_API:
        from workbench.export import trial  # heavy: torch (a trial export builds and converts the model)

        return getattr(trial, name)
    raise AttributeError(f"module 'workbench.export' has no attribute {name!r}")


__all__ = list(TRIAL_API)
