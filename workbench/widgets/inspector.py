"""Trial inspector: what one architecture is and what it costs on one device.

Rendered as plain HTML (tables with inline bars) rather than more plotly figures: an HTML widget's
value is synced state, so the panel survives a page reload unchanged, and it is cheap to redraw when
the picked device changes. Costs come from ``workbench.hardware.cost`` (the same numbers the search stored).
"""
from __future__ import annotations

import ipywidgets as widgets

from workbench._infra.errors import WorkbenchError
from workbench.hardware.cost import per_op_latency
from workbench.hardware.profiles import DeviceProfile
from workbench.study.front import TrialRecord
from workbench.widgets.common import COLORS, esc, training_text, trust_html

_BAR = ('<div style="background:#eee;width:{width}px;height:10px;display:inline-block;vertical-align:middle">'
        '<div style="background:{color};width:{fill}px;height:10px"></div></div>')


def bar(fraction: float, color: str, width: int = 160) -> str:
    """An inline horizontal bar; fractions over 1 are clipped and drawn red (over a limit)."""
    over = fraction > 1
    fill = int(round(min(max(fraction, 0.0), 1.0) * width))
    return _BAR.format(width=width, fill=fill, color=COLORS["front"] if over else color)


def _shape(shape) -> str:
    return "×".join(str(s) for s in shape)


def layer_table(record: TrialRecord, profile: DeviceProfile) -> str:
    """Per fused op: kind, stage, shapes, kernel/stride, bits, MACs, params and latency on ``profile``."""
    try:
        latencies = per_op_latency(record.arch, profile)
        why_none = (f"{esc(profile.name)}'s latency is a whole-model figure "
                    f"({esc(profile.latency.summary())}): no per-op breakdown")
    except WorkbenchError:
        latencies = None  # the device does not run this precision: no latency to break down
        why_none = f"{esc(profile.name)} does not run {esc(record.arch.precision)}"
    longest = max((ms for _, ms, _ in latencies), default=0.0) if latencies else 0.0
    rows = []
    for i, op in enumerate(record.arch.ops):
        if latencies:
            _, ms, interp = latencies[i]
            lat = f"{bar(ms / longest if longest else 0, COLORS['feasible'])} {ms:.3f}{' *' if interp else ''}"
        else:
            lat = "—"
        rows.append(f"<tr><td>{i}</td><td>{esc(op.kind)}</td><td>{esc(op.stage)}</td>"
                    f"<td>{_shape(op.in_shape)} → {_shape(op.out_shape)}</td><td>{op.kernel}/{op.stride}</td>"
                    f"<td>w{op.wbits}/a{op.abits}</td><td style='text-align:right'>{op.macs:,}</td>"
                    f"<td style='text-align:right'>{op.params:,}</td><td>{lat}</td></tr>")
    head = ("<tr><th>#</th><th>op</th><th>stage</th><th>shape (C×H×W)</th><th>kernel/stride</th><th>bits</th>"
            f"<th>MACs</th><th>params</th><th>latency ms on {esc(profile.name)}</th></tr>")
    if latencies:
        overhead = float(getattr(profile, "per_inference_ms", 0.0) or 0.0)  # runtime's fixed cost per inference
        total = sum(ms for _, ms, _ in latencies)
        note = (f"<div style='font-size:11px;color:#666'>ops {total:.3f} ms + runtime overhead {overhead:.3f} ms; "
                "* not in the device's LUT: interpolated</div>")
    else:
        note = f"<div style='color:#a00'>{why_none}</div>"
    return f"<table class='wb-layers' style='font-size:12px'>{head}{''.join(rows)}</table>{note}"


def memory_bars(record: TrialRecord, profile: DeviceProfile) -> str:
    """Peak SRAM and flash against what the device leaves for the model (budget = capacity − runtime)."""
    pred = record.prediction(profile)
    lines = []
    for label, used, budget, total in (
            ("peak SRAM", pred["peak_sram_bytes"], profile.sram_budget_bytes, profile.sram_bytes),
            ("flash", pred["flash_bytes"], profile.flash_budget_bytes, profile.flash_bytes)):
        frac = used / budget
        lines.append(f"<tr><td>{label}</td><td>{bar(frac, COLORS['feasible'], 240)}</td>"
                     f"<td>{used / 1024:.1f} KB of {budget / 1024:.0f} KB ({100 * frac:.1f}%; device has "
                     f"{total / 1024:.0f} KB)</td></tr>")
    return f"<table class='wb-memory' style='font-size:12px'>{''.join(lines)}</table>"


def policy_html(record: TrialRecord) -> str:
    policy = record.arch.policy
    stages = ", ".join(f"{k}: {v}-bit" for k, v in policy["stage_weight_bits"].items()) or "—"
    return (f"<div class='wb-policy'>precision <b>{esc(policy['precision'])}</b>, mode {esc(policy['mode'])}, "
            f"activations {policy['activation_bits']}-bit, stage weights: {esc(stages)}</div>")


def fit_html(record: TrialRecord, profile: DeviceProfile, latency_budget_ms: float | None) -> str:
    """The verdict of the one feasibility rule (the plot colours its point by the same call)."""
    problems = record.fit_problems(profile, latency_budget_ms)
    budget = f" within the {latency_budget_ms:g} ms budget" if latency_budget_ms else ""
    if not problems:
        return f"<span class='wb-fit' data-fits='yes' style='color:#2a2'>fits {esc(profile.name)}{budget}</span>"
    return (f"<span class='wb-fit' data-fits='no' style='color:#c00'>does NOT fit {esc(profile.name)}: "
            f"{esc('; '.join(problems))}</span>")


def training_html(record: TrialRecord, pred: dict) -> str:
    """One line with the training step's peak SRAM, where the study costs it (``--train-scheme``)."""
    text = training_text(record, pred)
    budget = record.training.budget_kb if text else None
    limit = f" · study budget {budget:g} KB" if budget else ""
    return (f"<div class='wb-training'>{text}, int8 compiled count, SGD{limit}</div>") if text else ""


def trial_html(record: TrialRecord, profile: DeviceProfile, study_name: str = "",
               latency_budget_ms: float | None = None) -> str:
    """The whole panel for one trial on one device."""
    pred = record.prediction(profile)
    acc = ("rejected before training (no accuracy)" if record.accuracy is None
           else f"accuracy {record.accuracy_text()}")
    if record.n > 1:
        acc += (f" <span class='wb-measurements'>(measured {', '.join(f'{v:.4f}' for v in record.measurements)}: "
                f"trial{'s' if len(record.trials) > 1 else ''} {', '.join(map(str, record.trials))} and other "
                f"seeds; the front uses the mean)</span>")
    lat = "not runnable" if pred["latency_ms"] is None else f"{pred['latency_ms']:.3f} ms"
    return (f"<h4 class='wb-trial-title'>Trial {record.number}{' of ' + esc(study_name) if study_name else ''} "
            f"on {esc(profile.name)}</h4>"
            f"<div><code>{esc(record.arch.summary())}</code></div>"
            f"<div>{acc} · latency {lat} · {pred['macs']:,} MACs · {pred['params']:,} params</div>"
            f"{training_html(record, pred)}"
            f"{trust_html(profile, [record.arch])}"
            f"<div>{fit_html(record, profile, latency_budget_ms)}</div>"
            f"<h5>Memory against the device's limits</h5>{memory_bars(record, profile)}"
            f"<h5>Quantisation policy</h5>{policy_html(record)}"
            f"<h5>Layers and latency breakdown</h5>{layer_table(record, profile)}")


class TrialInspector(widgets.VBox):
    """Panel for one trial; ``show(record, profile)`` fills it, an optional export panel sits below.
    ``latency_budget_ms`` is the study's: the fit verdict applies the same rule as the plot."""

    def __init__(self, study_name: str = "", export_panel: widgets.Widget | None = None,
                 latency_budget_ms: float | None = None):
        self.study_name = study_name
        self.latency_budget_ms = latency_budget_ms
        self.record: TrialRecord | None = None
        self.profile: DeviceProfile | None = None
        self.body = widgets.HTML("<i>Click a point in the plot to inspect that trial.</i>")
        self.body.add_class("wb-inspector-body")
        self.export_panel = export_panel
        super().__init__([self.body] + ([export_panel] if export_panel is not None else []))
        self.add_class("wb-inspector")

    def show(self, record: TrialRecord, profile: DeviceProfile) -> None:
        self.record, self.profile = record, profile
        self.body.value = trial_html(record, profile, self.study_name, self.latency_budget_ms)
        if self.export_panel is not None:
            self.export_panel.set_trial(record, profile.path)
