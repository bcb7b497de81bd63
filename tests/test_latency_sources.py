"""Latency sources: the registry of kinds, the kind each shipped profile gets from its existing fields, fingerprints
unchanged by the move, and a toy whole-model source (defined and registered here only) costed, trusted,
fingerprinted and checked by the modules that ask ``profile.latency`` — none of them edited for it."""
from __future__ import annotations

import hashlib
import importlib
import json
import shutil
from pathlib import Path

import pytest

from workbench import WorkbenchError, estimate, load_space
from workbench._infra.yamlio import Fields
from workbench.hardware import profiles
from workbench.hardware.cost import per_op_latency
from workbench.hardware.latency import LATENCY_SOURCES, LatencySource, SourceContext, SourceKind
from workbench.hardware.latency.lut_source import LutSource
from workbench.hardware.latency.modeled_source import ModeledSource
from workbench.hardware.locations import PROFILES_DIR, profile_file
from workbench.hardware.lut import load_lut, lut_sha256
from workbench.hardware.trust import LatencyTrust, trust_lines
from workbench.model.space import enumerate_ops
from workbench.search.config import check_latency_coverage
from workbench.study.fingerprint import device_fingerprint, differences


class WholeModelTimings(LatencySource):
    """Test-only: whole models timed on a board, summarised as overhead + ms per million MACs; no per-op rows."""

    def __init__(self, context: SourceContext, path: Path, data: dict):
        super().__init__(context)
        self.path, self.data, self.label = path, data, path.name

    @classmethod
    def read_settings(cls, f: Fields, profile_yaml: Path) -> dict:
        return {"file": profile_file(profile_yaml, f.str("whole_models"), "whole_models")}

    @classmethod
    def load(cls, settings: dict, context: SourceContext) -> "WholeModelTimings":
        return cls(context, settings["file"], json.loads(settings["file"].read_text()))

    def model_latency(self, model) -> tuple[float, int]:
        macs = sum(op.macs for op in model.ops)
        return self.data["overhead_ms"] + self.data["ms_per_mmac"] * macs / 1e6, 0

    def precisions(self) -> set[str]:
        return set(self.data["precisions"])

    def check_covers(self, space) -> None:
        for op in enumerate_ops([space], list(self.context.precisions)):
            if op.kind not in self.data["kinds"]:
                raise WorkbenchError(f"device {self.context.device}: no whole model with a {op.kind} was timed")

    def fingerprint(self) -> dict:
        return {"whole_sha256": hashlib.sha256(self.path.read_bytes()).hexdigest()}

    def describe_change(self, saved: dict) -> str:
        return f"its whole-model timings differ ({saved.get('whole_sha256', '?')[:8]} then)"

    def trust(self, precision: str) -> LatencyTrust:
        return LatencyTrust(self.context.device, precision, "measured",
                            f"{precision}: whole models timed on the board (toy)", source=str(self.path))

    def files(self) -> tuple[str, ...]:
        return (str(self.path),)

    def summary(self) -> str:
        return f"whole models ({self.path.name})"


TOY = "toy-whole-models"
if TOY not in LATENCY_SOURCES:
    LATENCY_SOURCES.register(SourceKind(TOY, "whole models timed on a board (test only)", WholeModelTimings))


@pytest.fixture
def toy_profile(tmp_path):
    """stm32f746's limits and memory model, its latency from whole-model timings instead of a LUT."""
    folder = tmp_path / "toy-board"
    folder.mkdir()
    text = (PROFILES_DIR / "stm32f746" / "profile.yaml").read_text()
    lines = [line for line in text.splitlines()
             if not line.startswith(("name:", "lut:", "latency_model:", "precisions:"))]
    lines += ["name: toy-board", "precisions: [int8]", f"latency_source: {TOY}", "whole_models: whole.json"]
    (folder / "profile.yaml").write_text("\n".join(lines) + "\n")
    (folder / "whole.json").write_text(json.dumps({"precisions": ["int8"], "overhead_ms": 0.5, "ms_per_mmac": 2.0,
                                                   "kinds": ["conv2d", "dsconv2d", "mbconv", "gap", "linear"]}))
    yield folder
    profiles._CACHE.clear()


def test_registry_lists_the_shipped_kinds_and_profiles_get_theirs_from_their_fields():
    assert {"lut", "modeled"} <= set(LATENCY_SOURCES.names())
    assert all(kind.help for kind in LATENCY_SOURCES.entries())
    kinds = {p.name: type(p.latency) for p in profiles.all_profiles()}
    assert kinds["host-cpu"] is LutSource
    assert {name for name, kind in kinds.items() if kind is ModeledSource} == \
        {"rpi4", "stm32f746", "stm32l4r5", "stm32l4r5-microtvm", "stm32l4r5-xcubeai"}


def _copy(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    shutil.copytree(PROFILES_DIR / name, folder)
    return folder


def test_an_explicit_latency_source_is_checked_against_the_registry(tmp_path):
    folder = _copy(tmp_path, "host-cpu")
    yaml = folder / "profile.yaml"
    yaml.write_text(yaml.read_text() + "latency_source: lut\n")
    assert type(profiles.load_profile(folder).latency) is LutSource
    yaml.write_text(yaml.read_text().replace("latency_source: lut", "latency_source: vela"))
    with pytest.raises(WorkbenchError, match=r"latency_source: 'vela' is not one of lut, modeled"):
        profiles.load_profile(folder)
    yaml.write_text(yaml.read_text().replace("latency_source: vela", "latency_source: modeled"))
    with pytest.raises(WorkbenchError, match="latency_model: missing required field"):
        profiles.load_profile(folder)


def test_a_modeled_profile_whose_lut_was_re_measured_is_a_lut_profile(tmp_path):
    """Rows that are not all ``modeled`` are what the profile rests on: interpolation, a measured trust line."""
    folder = _copy(tmp_path, "stm32f746")
    lut = folder / "lut.csv"
    lut.write_text(lut.read_text().replace(",modeled,", ",measured,", 1))
    profile = profiles.load_profile(folder)
    assert type(profile.latency) is LutSource and profile.latency.model is None
    assert profile.latency.trust("int8").basis == "measured"


@pytest.mark.parametrize("name", ["host-cpu", "stm32f746"])
def test_the_device_fingerprint_keeps_the_lut_hash_stored_studies_hold(name):
    profile = profiles.load_profile(name)
    lut = load_lut(PROFILES_DIR / name / "lut.csv")
    fingerprint = device_fingerprint(profile)
    assert list(fingerprint) == ["limits", "lut_sha256", "lut_entries"]
    assert fingerprint["lut_sha256"] == lut_sha256(lut) and fingerprint["lut_entries"] == len(lut.entries)
    assert "latency" not in fingerprint["limits"] and "per_inference_ms" in fingerprint["limits"]


def test_a_changed_lut_is_named_on_resume_as_before(tmp_path):
    folder = _copy(tmp_path, "host-cpu")
    before = device_fingerprint(profiles.load_profile(folder))
    lut = folder / "lut.csv"
    head, first, rest = lut.read_text().split("\n", 2)
    fields = first.split(",")
    fields[5] = repr(float(fields[5]) * 2)  # mean_ms
    lut.write_text("\n".join([head, ",".join(fields), rest]))
    profiles._CACHE.clear()
    edited = profiles.load_profile(folder)
    mine = device_fingerprint(edited)
    said = differences({"space": {}, "device": before, "data": {}}, {"space": {}, "device": mine, "data": {}},
                       device=edited)
    n = before["lut_entries"]
    assert said == [f"device host-cpu: its latency LUT differs from the study's ({n} entries then, {n} now, content "
                    f"hash {before['lut_sha256'][:12]} vs {mine['lut_sha256'][:12]})"]


def test_an_additive_source_costs_a_whole_model_as_the_estimator_does():
    profile = profiles.load_profile("stm32f746")
    arch = load_space("vision").random_archs(1, seed=5, precisions=["int8"])[0]
    ms, interpolated = profile.latency.model_latency(arch)
    cost = estimate(arch, profile)
    assert ms == pytest.approx(cost.latency_ms, rel=1e-12) and interpolated == cost.interpolated_ops
    assert [ms for _, ms, _ in per_op_latency(arch, profile)] == [r[0] for r in profile.latency.breakdown(arch.ops)]


def test_a_whole_model_source_is_costed_trusted_and_fingerprinted_without_a_lut(toy_profile):
    profile = profiles.load_profile(toy_profile)
    assert isinstance(profile.latency, WholeModelTimings) and profile.latency.lut is None
    int8 = load_space("vision").random_archs(1, seed=1, precisions=["int8"])[0]
    cost = estimate(int8, profile)
    assert cost.latency_ms == pytest.approx(0.5 + 2.0 * int8.macs / 1e6, rel=1e-12)
    assert cost.interpolated_ops == 0 and cost.supported and cost.peak_sram_bytes > 0
    fp32 = load_space("vision").random_archs(1, seed=1, precisions=["fp32"])[0]
    assert estimate(fp32, profile).latency_ms is None  # not among its precisions
    assert per_op_latency(int8, profile) is None  # no per-op rows to draw
    assert trust_lines(profile) == ["int8: whole models timed on the board (toy)"]
    assert profile.one_line().endswith("int8            whole models (whole.json)")
    fingerprint = device_fingerprint(profile)
    assert list(fingerprint) == ["limits", "whole_sha256"]


def test_a_changed_whole_model_file_reloads_the_profile_and_is_named_on_resume(toy_profile):
    profile = profiles.load_profile(toy_profile)
    before = device_fingerprint(profile)
    timings = toy_profile / "whole.json"
    timings.write_text(timings.read_text().replace('"ms_per_mmac": 2.0', '"ms_per_mmac": 3.0'))
    profiles._CACHE.clear()  # the edit may land within the file system's timestamp granularity
    reloaded = profiles.load_profile(toy_profile)
    assert reloaded is not profile and reloaded.latency.data["ms_per_mmac"] == 3.0
    mine = {"space": {}, "device": device_fingerprint(reloaded), "data": {}}
    saved = {**mine, "device": before}
    said = differences(saved, mine, device=reloaded)
    assert said == [f"device toy-board: its whole-model timings differ ({before['whole_sha256'][:8]} then)"]


def test_search_validation_asks_the_source_what_it_covers(toy_profile):
    profile = profiles.load_profile(toy_profile)
    check_latency_coverage(load_space("vision"), [profile])
    with pytest.raises(WorkbenchError, match="no whole model with a conv1d was timed"):
        check_latency_coverage(load_space("sensor-imu"), [profile])


def test_score_and_the_inspector_show_no_per_op_figures_for_a_whole_model_source(toy_profile, monkeypatch):
    from workbench.study.front import TrialRecord
    from workbench.widgets.inspector import layer_table

    scoring = importlib.import_module("workbench.scoring.score")  # the package's `score` is the function

    profile = profiles.load_profile(toy_profile)
    arch = load_space("vision").random_archs(1, seed=1, precisions=["int8"])[0]
    monkeypatch.setattr(scoring, "import_model",  # the file's lowering is tested in test_score.py
                        lambda path: scoring.ImportedModel(str(path), "tflite", "int8", tuple(arch.ops)))
    result = scoring.score("model.tflite", [profile])
    assert result.per_op["toy-board"] == [(None, False)] * len(arch.ops)
    assert result.costs["toy-board"].latency_ms == pytest.approx(0.5 + 2.0 * arch.macs / 1e6, rel=1e-12)
    assert "int8: whole models timed on the board (toy)" in scoring.format_score(result)
    html = layer_table(TrialRecord(0, arch, 0.9, {}, (), 1.0), profile)
    assert "whole-model figure (whole models (whole.json)): no per-op breakdown" in html
