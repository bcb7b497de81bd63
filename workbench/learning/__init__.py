"""Learning on the device, simulated on the host: adapting a stored trial to a shifted domain
(:mod:`.adapt`, ``workbench adapt``) and choosing a sparse update scheme under a training-memory budget
(:mod:`.contribution`, ``--scheme sparse:auto``).

Floor 7: above the export (an adaptation starts from a stored trial's rebuilt weights, as an export does).
The arithmetic of a training step lives in :mod:`workbench.model.int_training`, the shifted tasks in
:mod:`workbench.model.tasks`, the training memory in :mod:`workbench.hardware.training`; this package puts
them together for one trial. Importing it is light; :func:`adapt_trial` imports torch on first use.
"""
ADAPT_API = ("AdaptReport", "adapt_trial", "format_report")


def __getattr__(name: str):
    if name in ADAPT_API:
        from workbench.learning import adapt  # heavy: torch (adaptation trains)

        return getattr(adapt, name)
    raise AttributeError(f"module 'workbench.learning' has no attribute {name!r}")


__all__ = list(ADAPT_API)
