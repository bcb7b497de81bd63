"""Export from the inspector: pick a format, press the button, see the files and their checks inline.

The work is :func:`workbench.export.trial.export_trial` (rebuild the trial's weights by deterministic
retraining, write the file, run it in its own runtime on the test set, write a manifest). Each trial goes
into its own folder, ``<folder>/<study>/trial-<n>`` (:func:`workbench.export.trial.trial_folder`), shown as an
absolute path, so two trials never share a manifest; exports of one trial add to its folder (a format
exported again replaces only its own files) and the panel says what the folder already holds; a trial that does not fit the device
(the one feasibility rule, latency budget included) is exported with a warning. It runs in a background
thread so the notebook keeps drawing while it trains and converts; ``export()`` is the same thing,
blocking, for scripts and headless notebooks.
"""
from __future__ import annotations

import threading
from pathlib import Path

import ipywidgets as widgets

from workbench._infra.notices import listening, one_line
from workbench.export import trial as trial_export  # the module: tests replace its export_trial
from workbench.export.folder import describe
from workbench.export.formats import FORMATS
from workbench.hardware.profiles import load_profile
from workbench.study.front import TrialRecord
from workbench.widgets.common import esc, one_line_error

# the dropdown: every registered format (export.formats.FORMATS is the one list), labelled by its help's head
FORMAT_CHOICES = tuple((fmt.help.split(" (")[0].split(":")[0], fmt.name) for fmt in FORMATS.entries())


_CELL = "style='white-space:nowrap'"  # "60.1 KB" stays on one line in a narrow notebook column


def result_html(result) -> str:
    """Every format the folder holds (this export's and earlier ones), sizes and the parity/accuracy
    verdict; the TFLite Micro memory check; every manifest warning once."""
    rows = []
    exported = getattr(result, "exported", None) or list(result.manifest["files"])
    for name, e in result.manifest["files"].items():
        v = e["verification"]
        verdict = "<b style='color:#2a2'>PASS</b>" if e["passed"] else "<b style='color:#c00'>FAIL</b>"
        if name not in exported:
            verdict += f"<div style='font-size:11px'>earlier export ({esc(e.get('exported', '?'))})</div>"
        fallbacks = "".join(f"<div style='font-size:11px'>fallback: {esc(fb)}</div>" for fb in e["fallbacks"])
        rows.append(f"<tr><td {_CELL}>{esc(name)}</td><td><code>{esc(Path(result.out_dir).absolute() / e['file'])}</code>"
                    f"{fallbacks}</td><td {_CELL}>{e['bytes'] / 1024:.1f} KB</td><td>{v['accuracy']:.4f} (PyTorch "
                    f"{v['pytorch_accuracy']:.4f})</td><td {_CELL}>{100 * v['agreement']:.2f}%</td>"
                    f"<td {_CELL}>{v['max_abs_logit_diff']:.2e}</td><td {_CELL}>{e['latency_ms_measured']['ms']:.4f} ms</td>"
                    f"<td>{verdict}</td></tr>")
    return (f"{_warnings_html(result.manifest)}<table class='wb-export-result' style='font-size:12px'><tr><th>format</th>"
            "<th>file</th><th>size</th><th>accuracy on test set</th><th>top-1 agreement</th><th>max |Δ logit|</th>"
            f"<th>host latency</th><th>check</th></tr>{''.join(rows)}</table>{memory_html(result.manifest)}"
            f"<div style='font-size:11px'>{esc(_training_line(result.manifest))}<br>"
            f"folder: <code class='wb-export-folder'>{esc(Path(result.out_dir).absolute())}</code><br>"
            f"manifest: <code>{esc(Path(result.manifest_path).absolute())}</code></div>")


def manifest_warnings(manifest: dict) -> list[str]:
    """The manifest's warnings, each once: the device misfit, then each file's (a warning two formats share,
    e.g. the same int8 file's memory check for ``tflite-int8`` and ``tflm``, is one line naming both)."""
    fit = manifest.get("fit") or {}
    out = ([f"trial {manifest.get('trial')} does not fit {fit.get('device')}: {'; '.join(fit['problems'])}"]
           if fit.get("problems") else [])
    by_text: dict[str, list[str]] = {}
    for name, e in manifest["files"].items():
        for text in e.get("warnings", []):
            by_text.setdefault(text, []).append(name)
    return out + [f"{', '.join(names)}: {text}" for text, names in by_text.items()]


def _warnings_html(manifest: dict) -> str:
    return "".join(f"<div class='wb-export-warning' style='color:#c60'><b>warning:</b> {esc(w)}</div>"
                   for w in manifest_warnings(manifest))


def memory_html(manifest: dict) -> str:
    """The TFLite Micro memory check of each full-INT8 file: SRAM (arena) and flash, predicted by
    workbench.hardware.memory vs measured in TFLM, and the bundle's arena where a bundle was written."""
    lines = []
    for name, e in manifest["files"].items():
        memory = (e.get("tflm") or {}).get("memory")
        if not memory:
            continue
        parts = [f"{what} predicted {memory[key]['predicted']:,} B vs measured {memory[key]['measured']:,} B "
                 f"({100 * memory[key]['relative_error']:+.1f} %)" for key, what in (("sram", "arena"), ("flash", "flash"))]
        bundle = e.get("bundle")
        if bundle:
            parts.append(f"bundle arena {bundle['arena_bytes']:,} B (measured + CMSIS-NN scratch + "
                         f"{100 * bundle['arena']['margin']:.0f} % margin)")
        lines.append(f"<div class='wb-export-memory' style='font-size:11px'><b>TFLite Micro memory check "
                     f"({esc(name)}):</b> {esc('; '.join(parts))}</div>")
    return "".join(lines)


def _training_line(manifest: dict) -> str:
    training = manifest.get("training", {})
    stored = training.get("stored_accuracy")
    return (f"weights rebuilt by retraining ({training.get('epochs')} epochs, seed {training.get('seed')}): "
            f"accuracy {training.get('accuracy', float('nan')):.4f}, stored "
            f"{'—' if stored is None else format(stored, '.4f')}"
            if training.get("source") == "retrained" else "")


class ExportPanel(widgets.VBox):
    """Format choice + button + inline result for the trial the inspector shows.

    ``out_dir`` is the base folder; each trial's files go to ``trial_folder(out_dir, study, trial)``.
    """

    def __init__(self, study_name: str, storage: str | None, out_dir: str | Path = "exports",
                 device: str | None = None, repeats: int = 50, latency_budget_ms: float | None = None):
        self.study_name, self.storage, self.device, self.repeats = study_name, storage, device, repeats
        self.latency_budget_ms = latency_budget_ms
        self.record: TrialRecord | None = None
        self.result = None
        self.format = widgets.Dropdown(options=FORMAT_CHOICES, value="onnx", description="format")
        self.out_dir = widgets.Text(str(Path(out_dir).absolute()), description="folder",
                                    layout=widgets.Layout(width="auto", flex="1 1 300px"))
        self.button = widgets.Button(description="Export", icon="download", disabled=True,
                                     tooltip="pick a trained trial first")
        self.target = widgets.HTML("")
        self.target.add_class("wb-export-target")
        self.output = widgets.HTML("")
        self.output.add_class("wb-export-output")
        self.notices = widgets.HTML("")  # the export's WorkbenchNotices (e.g. a retrain that missed the stored accuracy)
        self.notices.add_class("wb-notices")
        self.shown_notices: list[str] = []
        self.button.on_click(lambda _: self.start())
        self.out_dir.observe(lambda _: self._show_target(), names="value")
        self.format.observe(lambda _: self._show_target(), names="value")
        self._thread: threading.Thread | None = None
        super().__init__([widgets.HTML("<h5>Export this trial</h5>"),
                          widgets.HBox([self.format, self.out_dir, self.button],
                                       layout=widgets.Layout(flex_flow="row wrap")), self.target, self.output,
                          self.notices])
        self.add_class("wb-export")

    def folder(self, record: TrialRecord | None = None) -> Path | None:
        """The absolute folder this trial's export goes to (its own, per study and trial)."""
        record = record or self.record
        return None if record is None else trial_export.trial_folder(self.out_dir.value, self.study_name, record.number)

    def set_trial(self, record: TrialRecord, device: str | None = None) -> None:
        """Only trained trials have weights to rebuild; rejected ones keep the button off."""
        self.record, self.device = record, device or self.device
        self.result = None
        trained = record.accuracy is not None
        self.button.disabled = not trained or self.storage is None
        self.button.tooltip = ("export trial %d" % record.number if trained else
                               "rejected before training: nothing to export")
        self.output.value = "" if trained else "<i>This trial was rejected before training: nothing to export.</i>"
        self._show_target()

    def _show_target(self) -> None:
        """Where the files will go, what that folder already holds and, until an export shows its own
        warnings, whether the trial fits the device (each warning is shown once)."""
        if self.record is None or self.record.accuracy is None:
            self.target.value = ""
            return
        problems = []
        if self.device and self.result is None:
            problems = self.record.fit_problems(load_profile(self.device), self.latency_budget_ms)
        where = f"into <code>{esc(self.folder())}</code>"
        warn = (f"<div style='color:#c60'><b>warning:</b> trial {self.record.number} does not fit "
                f"{esc(load_profile(self.device).name)}: {esc('; '.join(problems))}</div>" if problems else "")
        held = describe(self.folder(), [self.format.value])
        held = f"<div class='wb-export-held' style='font-size:12px'>{esc(held)}</div>" if held else ""
        self.target.value = f"<div style='font-size:12px'>exports {where}</div>{held}{warn}"

    def export(self, fmt: str | None = None):
        """Export the shown trial now (blocking); returns the ``ExportResult``."""
        if self.record is None or self.record.accuracy is None:
            raise ValueError("pick a trained trial first (inspector.show / click a point)")
        fmt = fmt or self.format.value
        if fmt in dict(FORMAT_CHOICES).values():
            self.format.value = fmt  # the dropdown shows what is being exported
        lines: list[str] = []

        def log(message: str) -> None:
            lines.append(message)
            self.output.value = "<br>".join(esc(line) for line in lines[-4:]) + " …"

        self.output.value = f"exporting trial {self.record.number} as {esc(fmt)} …"
        self.shown_notices, self.notices.value = [], ""
        with listening(self._show_notice):  # this thread's notices go to the panel, not to whichever cell runs
            self.result = trial_export.export_trial(self.study_name, self.storage, self.record.number, [fmt],
                                                    self.folder(), device=self.device, log=log, repeats=self.repeats)
        self.output.value = result_html(self.result)
        self._show_target()  # what the folder holds now; the fit warning is the result's
        return self.result

    def _show_notice(self, notice) -> None:
        self.shown_notices.append(str(notice))
        self.notices.value = "".join(f"<div style='font-size:12px;color:#c60'>{esc(one_line(text))}</div>"
                                     for text in self.shown_notices)

    def start(self) -> None:
        """Button handler: export in a thread so the page keeps rendering while it trains/converts."""
        if self._thread is not None and self._thread.is_alive():
            return
        self.button.disabled = True
        self._thread = threading.Thread(target=self._run, daemon=True, name="workbench-export")
        self._thread.start()

    def wait(self, timeout: float | None = None):
        if self._thread is not None:
            self._thread.join(timeout)
        return self.result

    def _run(self) -> None:
        try:
            self.export()
        except Exception as exc:  # noqa: BLE001 — shown inline: a notebook user reads the reason where they clicked
            self.output.value = one_line_error(exc)
        finally:
            self.button.disabled = False
