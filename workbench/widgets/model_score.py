"""Model-file inspector: what an existing .tflite/.onnx file costs on the device profiles.

The notebook face of ``workbench score``: a path box, a device picker (one profile or all) and a
button; the panel shows the file's fused ops as :mod:`workbench.scoring.score` lowers them (shapes, window,
MACs, params, per-op latency per device) and the totals per device against the device's budgets.
Plain HTML in an ``HTML`` widget (synced state: it survives a page reload). A file the vocabulary
cannot express shows the one-line error instead of a traceback.
"""
from __future__ import annotations

import ipywidgets as widgets

from workbench._infra.errors import WorkbenchError
from workbench.hardware.profiles import all_profiles
from workbench.scoring.score import ModelScore, score
from workbench.widgets.common import esc


def _window(op) -> str:
    if "window" not in op.spec.key_fields:  # no kernel/stride to show (global pooling, reshapes, dense layers)
        return ""
    return f"{op.kh}×{op.kw}/{op.sh}×{op.sw}"


def score_html(result: ModelScore) -> str:
    """Per-op rows then per-device totals (over-budget SRAM/flash in red)."""
    devices = list(result.costs)
    m = result.model
    head = ("<tr><th>#</th><th>op</th><th>shape (C×H×W)</th><th>kernel/stride</th><th>MACs</th><th>params</th>"
            + "".join(f"<th>{esc(d)} ms</th>" for d in devices) + "</tr>")
    rows = []
    for i, op in enumerate(m.ops):
        cells = []
        for d in devices:
            ms, guessed = result.per_op[d][i]
            cells.append("<td>—</td>" if ms is None else f"<td style='text-align:right'>{ms:.4f}{' *' if guessed else ''}</td>")
        shape = "×".join(map(str, op.in_shape)) + " → " + "×".join(map(str, op.out_shape))
        rows.append(f"<tr><td>{i}</td><td>{esc(op.kind)}</td><td>{shape}</td><td>{_window(op)}</td>"
                    f"<td style='text-align:right'>{op.macs:,}</td><td style='text-align:right'>{op.params:,}</td>"
                    + "".join(cells) + "</tr>")
    profiles = {p.name: p for p in all_profiles()}
    totals = []
    for d, c in result.costs.items():
        p = profiles.get(d)
        sram_over = p is not None and c.peak_sram_bytes > p.sram_budget_bytes
        flash_over = p is not None and c.flash_bytes > p.flash_budget_bytes
        lat = "does not run this precision" if c.latency_ms is None else f"{c.latency_ms:.3f} ms"
        red = " style='color:#c00'"
        totals.append(f"<tr><td>{esc(d)}</td><td>{lat}</td><td>{c.interpolated_ops}</td>"
                      f"<td{red if sram_over else ''}>{c.peak_sram_kb:.1f}</td>"
                      f"<td{red if flash_over else ''}>{c.flash_kb:.1f}</td></tr>")
    summary = (f"<div><b>{esc(m.path)}</b>: {esc(m.format)}, {esc(m.precision)}, input "
               f"{'×'.join(map(str, m.input_shape))}, {len(m.ops)} ops, {m.macs:,} MACs, {m.n_params:,} params</div>")
    total_table = ("<table style='font-size:12px'><tr><th>device</th><th>latency</th><th>interpolated ops</th>"
                   f"<th>peak SRAM KB</th><th>flash KB</th></tr>{''.join(totals)}</table>")
    return (summary + f"<table class='wb-score' style='font-size:12px'>{head}{''.join(rows)}</table>"
            + "<div style='font-size:11px;color:#666'>* not in the device's LUT: interpolated</div>" + total_table)


class ModelScorePanel(widgets.VBox):
    """Path + device picker + Score button above the HTML report of :func:`workbench.scoring.score.score`."""

    def __init__(self, path: str = "", device: str = "all"):
        names = ["all"] + [p.name for p in all_profiles()]
        self.path = widgets.Text(value=str(path), description="model file", placeholder="model.tflite or model.onnx",
                                 layout=widgets.Layout(width="60%"))
        self.device = widgets.Dropdown(options=names, value=device if device in names else "all", description="device")
        self.button = widgets.Button(description="Score", button_style="primary")
        self.report = widgets.HTML()
        self.button.on_click(lambda _: self.refresh())
        super().__init__([widgets.HBox([self.path, self.device, self.button]), self.report])
        if path:
            self.refresh()

    def refresh(self) -> None:
        try:
            self.report.value = score_html(score(self.path.value, self.device.value))
        except WorkbenchError as exc:
            self.report.value = f"<div style='color:#c00'>error: {esc(str(exc))}</div>"


def score_file(path: str, device: str = "all") -> ModelScorePanel:
    """Show what ``path`` costs on ``device`` (``all``: every shipped profile)."""
    return ModelScorePanel(path, device)
