"""What every widget shares: a study read back from storage, the metrics an axis can show, hover texts
and errors shown as one line.

The widgets only *read* what the search stored (``workbench.study.front`` records, their per-device
predictions) and ask ``workbench.study.front``/``workbench.hardware.cost`` for fronts and costs, so a notebook draws
exactly what ``workbench pareto`` prints.
"""
from __future__ import annotations

import html
import re
import sys
from dataclasses import dataclass, field

import optuna

from workbench._infra.errors import WorkbenchError
from workbench.hardware.profiles import DeviceProfile, profiles_with
from workbench.hardware.trust import precisions_of, trust_lines
from workbench.hardware.training import TRAIN_SRAM_FIELD
from workbench.study.front import TrialRecord, best_of, by_architecture
from workbench.study.objectives import OBJECTIVES
from workbench.study.schema import StudySettings
from workbench.study.stored import StoredStudy

COUNTS = {"macs": "MACs", "params": "parameters"}  # axes that are no objective: minimised, the same on every device
COLORS = {"front": "#d62728", "feasible": "#1f77b4", "infeasible": "#b0b0b0", "rejected": "#7f7f7f",
          "selected": "#ff7f0e"}
PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


@dataclass
class StudyView:
    """A stored study as the widgets read it: :class:`workbench.study.stored.StoredStudy` (settings, target, the
    one front rule and the one best rule) plus the records last read, so every widget of a view draws the
    same snapshot until ``reload()``."""

    study: optuna.Study
    storage_url: str | None = None  # needed to export (the exporter reopens the study by name)
    records: list[TrialRecord] = field(default_factory=list)  # one per completed trial
    architectures: list[TrialRecord] = field(default_factory=list)  # one per trained architecture (+ rejected)

    def __post_init__(self):
        self.stored = StoredStudy(self.study, self.storage_url)
        self.storage_url = self.stored.storage_url
        self.reload()

    @property
    def name(self) -> str:
        return self.study.study_name

    @property
    def settings(self) -> StudySettings:
        return self.stored.settings

    @property
    def objectives(self) -> tuple[str, ...]:
        return self.settings.objectives

    @property
    def latency_budget_ms(self) -> float | None:
        return self.settings.latency_budget_ms

    @property
    def target(self) -> DeviceProfile:
        """The device the search aimed at (a user profile folder is found again by its path)."""
        return self.stored.target

    def reload(self) -> list[TrialRecord]:
        """Re-read finished trials and extra seeds: the storage is the single source of truth (live searches
        append, ``workbench repeats`` adds measurements)."""
        self.stored.refresh()
        self.records = self.stored.records()
        self.architectures = by_architecture(self.records)
        return self.records

    def record(self, number: int) -> TrialRecord:
        """What trial ``number`` stands for: its architecture's record (all measurements, numbered by the
        first trained trial) when it was trained or is a duplicate, else the trial's own record."""
        for r in self.records:
            if r.number == number:
                wanted = r.duplicate_of if r.duplicate_of is not None else number
                return next((a for a in self.architectures if wanted in a.trials), r)
        raise WorkbenchError(f"study {self.name!r} has no finished trial {number}")

    def front(self, profile: DeviceProfile, objectives=None) -> list[TrialRecord]:
        return self.stored.front(profile, objectives, records=self.records)

    def best(self, profile: DeviceProfile) -> TrialRecord | None:
        """The best rule on the front of ``profile`` (highest mean accuracy, then latency, then trial)."""
        return best_of(self.front(profile), profile)

    def profiles(self, extra=()) -> dict[str, DeviceProfile]:
        """Every shipped profile, the target (which may be a user's own folder) and ``extra`` ones
        (names, folders or profiles): a user profile added after the search is costed on the fly."""
        return profiles_with(self.target, *extra)


def study_view(source, storage: str | None = None) -> StudyView:
    """Accept what a notebook has at hand: a SearchResult, a Search, an optuna Study, a StoredStudy, a
    StudyView or a study name (with ``storage``)."""
    if isinstance(source, StudyView):
        return source
    study = getattr(source, "study", source)
    url = storage or getattr(source, "storage_url", None) or _str_or_none(getattr(source, "storage", None))
    if isinstance(study, str):
        study = StoredStudy(study, url).study
    if not isinstance(study, optuna.Study):
        raise WorkbenchError(f"cannot read a study from {type(source).__name__}")
    return StudyView(study, url)


def _str_or_none(value) -> str | None:
    return value if isinstance(value, str) else None


# ---------------------------------------------------------------- metrics on axes

def metrics() -> dict[str, str]:
    """Axis metric → label: every registered objective under its own name and axis label (read now, so an
    objective registered after this module was imported is there too), then the counts. An axis
    ``latency@<profile>`` pins latency to one profile whatever device is picked."""
    return {**{o.name: o.axis for o in OBJECTIVES.entries()}, **COUNTS}


def axis_options(profiles) -> list[tuple[str, str]]:
    """Dropdown options: every metric on the picked device, plus latency on each named profile."""
    options = [(label + " — picked device" if _per_device(key) else label, key) for key, label in metrics().items()]
    options += [(f"latency (ms) on {name}", f"latency@{name}") for name in profiles]
    return options


def split_axis(axis: str) -> tuple[str, str | None]:
    metric, _, device = axis.partition("@")
    if metric not in metrics():
        raise WorkbenchError(f"unknown axis {axis!r} (metrics: {', '.join(metrics())}, or latency@<device>)")
    return metric, device or None


def axis_title(axis: str, profile: DeviceProfile) -> str:
    metric, device = split_axis(axis)
    where = device or profile.name
    label = metrics()[metric]
    return f"{label} on {where}" if _per_device(metric) else label


def _per_device(metric: str) -> bool:
    """The metric differs per device profile (an objective that says so; MACs and parameters do not)."""
    return metric in OBJECTIVES and OBJECTIVES[metric].per_device


def metric_value(record: TrialRecord, axis: str, profile: DeviceProfile, profiles: dict) -> float | None:
    """A record's value on an axis, read from its stored prediction (None: no accuracy / not runnable)."""
    metric, device = split_axis(axis)
    objective = OBJECTIVES[metric] if metric in OBJECTIVES else None
    if objective is not None and objective.quality:
        return record.accuracy
    pred = record.prediction(profiles[device] if device else profile)
    if objective is not None and objective.field not in pred:  # costed only in some studies (train_sram)
        return None
    value = pred[metric] if objective is None else objective.shown(pred)
    return None if value is None else float(value)


def axis_unit(axis: str) -> str:
    """The unit of an axis (``ms``; none for counts and accuracy)."""
    metric = split_axis(axis)[0]
    return OBJECTIVES[metric].unit if metric in OBJECTIVES else ""


def minimised(axis: str) -> bool:
    """Lower is better on the axis: a minimised objective, or a count."""
    metric = split_axis(axis)[0]
    return metric not in OBJECTIVES or not OBJECTIVES[metric].maximised


def hover_text(record: TrialRecord, profile: DeviceProfile, latency_budget_ms: float | None = None) -> str:
    """Hover: the architecture summary, what it costs on the picked device and why it does not fit."""
    pred = record.prediction(profile)
    acc = "rejected before training" if record.accuracy is None else f"accuracy {record.accuracy_text()}"
    if record.n > 1:
        acc += f"<br>measured {', '.join(f'{v:.4f}' for v in record.measurements)}"
    lat = "not runnable" if pred["latency_ms"] is None else f"{pred['latency_ms']:.3f} ms"
    problems = record.fit_problems(profile, latency_budget_ms)
    fit = f"does not fit: {html.escape('; '.join(problems))}" if problems else f"fits {html.escape(profile.name)}"
    return (f"trial {record.number}: {acc}<br>{html.escape(record.arch.summary())}<br>"
            f"{html.escape(profile.name)}: {lat}, SRAM {pred['peak_sram_bytes'] / 1024:.1f} KB, "
            f"flash {pred['flash_bytes'] / 1024:.1f} KB{training_text(record, pred, ', ')}, {pred['macs']:,} MACs<br>"
            f"{fit}")


def training_text(record: TrialRecord, pred: dict, prefix: str = "") -> str:
    """``training SRAM 41.2 KB (classifier)`` where the study costs training memory, else nothing."""
    value = pred.get(TRAIN_SRAM_FIELD)
    if value is None or record.training is None:
        return ""
    return f"{prefix}training SRAM {value / 1024:.1f} KB ({html.escape(record.training.scheme)})"


def esc(value) -> str:
    return html.escape(str(value))


def trust_html(profile, archs) -> str:
    """Grey lines saying how far latencies on ``profile`` can be trusted, one per precision the architectures'
    ops run at (every precision of the device when there are none): :mod:`workbench.hardware.trust`."""
    return "".join(f"<div class='wb-trust' style='font-size:12px;color:#555'>latency {esc(line)}</div>"
                   for line in trust_lines(profile, precisions_of(archs) or None))


def one_line_error(exc: BaseException) -> str:
    """An error as one red line of HTML: a ``WorkbenchError`` says what is wrong; anything else its type too."""
    text = notebook_message(exc) if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"
    first = (text.strip().splitlines() or [type(exc).__name__])[0]
    return f"<div class='wb-error' style='color:#c00'><b>error:</b> {esc(first[:400])}</div>"


def notebook_message(exc: BaseException) -> str:
    """A ``WorkbenchError`` as a notebook user reads it: CLI flags (``--trials:``) become the Python
    argument names they stand for (``trials:``)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"(?<![\w-])--([a-z][a-z0-9-]*)", lambda m: m.group(1).replace("-", "_"), text)


def show_errors_as_one_line() -> bool:
    """In IPython/Jupyter, show a ``WorkbenchError`` raised by a cell as one red line (``error: ...``)
    instead of a traceback through the workbench's internals; other exceptions keep their traceback.
    The cell still fails, so Run All stops there. Returns False outside IPython."""
    try:
        from IPython import get_ipython  # optional: IPython (the notebook extra)
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False

    def one_line(shell, etype, value, tb, tb_offset=None):
        print(f"error: {notebook_message(value)}", file=sys.stderr)
        return [f"error: {notebook_message(value)}"]

    shell.set_custom_exc((WorkbenchError,), one_line)
    return True
