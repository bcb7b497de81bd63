"""Export from the inspector: pick a format, press the button, see the files and their checks inline.

The work is :func:`workbench.export.export_trial` (rebuild the trial's weights by deterministic
retraining, write the file, run it in its own runtime on the test set, write a manifest). It runs in
a background thread so the notebook keeps drawing while it trains and converts; ``export()`` is the
same thing, blocking, for scripts and headless notebooks.
"""
from __future__ import annotations

import threading
from pathlib import Path

import ipywidgets as widgets

from ..front import TrialRecord
from .common import esc

FORMAT_CHOICES = (("ONNX fp32", "onnx"), ("ONNX int8", "onnx-int8"), ("TFLite fp32", "tflite"),
                  ("TFLite int8", "tflite-int8"))


def result_html(result) -> str:
    """Files, sizes and the parity/accuracy verdict of an ``ExportResult``'s manifest."""
    rows = []
    for name, e in result.manifest["files"].items():
        v = e["verification"]
        verdict = "<b style='color:#2a2'>PASS</b>" if e["passed"] else "<b style='color:#c00'>FAIL</b>"
        fallbacks = "".join(f"<div style='font-size:11px'>fallback: {esc(fb)}</div>" for fb in e["fallbacks"])
        rows.append(f"<tr><td>{esc(name)}</td><td><code>{esc(result.out_dir / e['file'])}</code>{fallbacks}</td>"
                    f"<td>{e['bytes'] / 1024:.1f} KB</td><td>{v['accuracy']:.4f} (PyTorch {v['pytorch_accuracy']:.4f})"
                    f"</td><td>{100 * v['agreement']:.2f}%</td><td>{v['max_abs_logit_diff']:.2e}</td>"
                    f"<td>{e['latency_ms_measured']['median']:.4f} ms</td><td>{verdict}</td></tr>")
    training = result.manifest.get("training", {})
    trained = (f"weights rebuilt by retraining ({training.get('epochs')} epochs, seed {training.get('seed')}): "
               f"accuracy {training.get('accuracy', float('nan')):.4f}, stored {training.get('stored_accuracy')}"
               if training.get("source") == "retrained" else "")
    return ("<table class='wb-export-result' style='font-size:12px'><tr><th>format</th><th>file</th><th>size</th>"
            "<th>accuracy on test set</th><th>top-1 agreement</th><th>max |Δ logit|</th><th>host latency</th>"
            f"<th>check</th></tr>{''.join(rows)}</table><div style='font-size:11px'>{esc(trained)}<br>"
            f"manifest: <code>{esc(result.manifest_path)}</code></div>")


class ExportPanel(widgets.VBox):
    """Format choice + button + inline result for the trial the inspector shows."""

    def __init__(self, study_name: str, storage: str | None, out_dir: str | Path = "export",
                 device: str | None = None, repeats: int = 50):
        self.study_name, self.storage, self.device, self.repeats = study_name, storage, device, repeats
        self.record: TrialRecord | None = None
        self.result = None
        self.format = widgets.Dropdown(options=FORMAT_CHOICES, value="onnx", description="format")
        self.out_dir = widgets.Text(str(out_dir), description="folder")
        self.button = widgets.Button(description="Export", icon="download", disabled=True,
                                     tooltip="pick a trained trial first")
        self.output = widgets.HTML("")
        self.output.add_class("wb-export-output")
        self.button.on_click(lambda _: self.start())
        self._thread: threading.Thread | None = None
        super().__init__([widgets.HTML("<h5>Export this trial</h5>"),
                          widgets.HBox([self.format, self.out_dir, self.button]), self.output])
        self.add_class("wb-export")

    def set_trial(self, record: TrialRecord, device: str | None = None) -> None:
        """Only trained trials have weights to rebuild; rejected ones keep the button off."""
        self.record, self.device = record, device or self.device
        trained = record.accuracy is not None
        self.button.disabled = not trained or self.storage is None
        self.button.tooltip = ("export trial %d" % record.number if trained else
                               "rejected before training: nothing to export")
        self.output.value = "" if trained else "<i>This trial was rejected before training: nothing to export.</i>"

    def export(self, fmt: str | None = None):
        """Export the shown trial now (blocking); returns the ``ExportResult``."""
        from ..export import export_trial

        if self.record is None or self.record.accuracy is None:
            raise ValueError("pick a trained trial first (inspector.show / click a point)")
        fmt = fmt or self.format.value
        lines: list[str] = []

        def log(message: str) -> None:
            lines.append(message)
            self.output.value = "<br>".join(esc(line) for line in lines[-4:]) + " …"

        self.output.value = f"exporting trial {self.record.number} as {esc(fmt)} …"
        self.result = export_trial(self.study_name, self.storage, self.record.number, [fmt], self.out_dir.value,
                                   device=self.device, log=log, repeats=self.repeats)
        self.output.value = result_html(self.result)
        return self.result

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
        except Exception as exc:  # shown inline: a notebook user reads the reason where they clicked
            self.output.value = f"<b style='color:#c00'>export failed:</b> {esc(exc)}"
        finally:
            self.button.disabled = False
