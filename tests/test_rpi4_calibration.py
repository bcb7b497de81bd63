"""The `rpi4` profile against what is published for the Raspberry Pi 4 (see docs/guides/devices.md, "`rpi4`").

No published single-thread whole-model latency of TFLite/XNNPACK on a Pi 4 was found (XNNPACK's README
prints only multi-threaded Raspberry Pi tables), so the 1-thread profile is not calibrated. What the published
multi-threaded figures do pin down is a range: one thread cannot be faster than several threads running
the same kernels, and (without superlinear speed-up) not more than 4x slower than the 4-core BCM2711's
multi-threaded run. These tests hold the modeled profile inside that range, check the networks written
down in ``hw_profiles/rpi4/models/`` against their published multiply-add counts, and keep the
multi-threaded file unusable as a calibration input for this 1-thread profile.

``python tests/test_rpi4_calibration.py`` prints the table docs/guides/devices.md quotes.
"""
from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pytest

from workbench.calibration.calibrate import _FixedChoices  # the suggester calibrate itself uses for fixed-choice spaces
from workbench.cli import main
from workbench.hardware.cost import estimate
from workbench.hardware.profiles import load_profile
from workbench.model.space import load_space

ROOT = Path(__file__).resolve().parent.parent

PROFILE_DIR = ROOT / "hw_profiles" / "rpi4"
MODELS = sorted((PROFILE_DIR / "models").glob("*.yaml"))
MULTITHREAD_CSV = PROFILE_DIR / "published_latency_multithread.csv"
BCM2711_CORES = 4  # the most threads XNNPACK's end2end-bench runs on a Pi 4
CHECK = re.compile(r"Check: ([0-9.]+) M multiply-adds")


def _arch(yaml_path: Path, precision: str):
    space = load_space(yaml_path)
    return space.sample(_FixedChoices(space.name, precision))


def _published_macs(yaml_path: Path) -> float:
    match = CHECK.search(yaml_path.read_text(encoding="utf-8"))
    assert match, f"{yaml_path.name}: header must cite 'Check: N M multiply-adds' from its source"
    return float(match.group(1)) * 1e6


def _multithread_rows() -> list[dict]:
    with MULTITHREAD_CSV.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def bound_rows() -> list[tuple[str, str, str, float, float]]:
    """(model, precision, build, published multi-threaded ms, modeled 1-thread ms) per published row."""
    profile = load_profile(PROFILE_DIR)
    out = []
    for row in _multithread_rows():
        arch = _arch(PROFILE_DIR / row["model"], row["precision"])
        out.append((row["model"], row["precision"], row["build"], float(row["ms_multithread"]),
                    estimate(arch, profile).latency_ms))
    return out


def test_every_written_network_has_published_figures_and_back():
    assert MODELS and {f"models/{p.name}" for p in MODELS} == {row["model"] for row in _multithread_rows()}


@pytest.mark.parametrize("yaml_path", MODELS, ids=lambda p: p.stem)
def test_model_macs_match_the_published_count(yaml_path):
    published = _published_macs(yaml_path)
    for precision in load_space(yaml_path).quant.precisions:
        macs = _arch(yaml_path, precision).macs
        assert abs(macs - published) <= 0.02 * published, (yaml_path.name, precision, macs, published)


def test_every_published_row_is_sourced_and_names_a_shipped_model():
    rows = _multithread_rows()
    assert len(rows) == 8
    for row in rows:
        assert (PROFILE_DIR / row["model"]).is_file()
        assert "google/XNNPACK README.md at commit" in row["source"] and row["threads"] == "multi"


def test_modeled_one_thread_latency_lies_in_the_published_multithread_range():
    for model, precision, build, multi_ms, modeled_ms in bound_rows():
        assert multi_ms <= modeled_ms <= BCM2711_CORES * multi_ms, (model, precision, build, multi_ms, modeled_ms)


def test_multithread_figures_cannot_calibrate_the_one_thread_profile(tmp_path, capsys):
    folder = tmp_path / "rpi4"
    shutil.copytree(PROFILE_DIR, folder)
    before = (folder / "latency_model.yaml").read_bytes()
    code = main(["calibrate", str(folder), "--measurements", str(folder / MULTITHREAD_CSV.name)])
    err = capsys.readouterr().err
    assert code == 2 and "missing ms" in err and "Traceback" not in err
    assert (folder / "latency_model.yaml").read_bytes() == before


if __name__ == "__main__":
    print(f"{'model':<26}{'prec':<6}{'build':<7}{'published multi-thread ms':>27}{'modeled 1-thread ms':>21}"
          f"{'ratio':>7}")
    for model, precision, build, multi_ms, modeled_ms in bound_rows():
        print(f"{model:<26}{precision:<6}{build:<7}{multi_ms:>27g}{modeled_ms:>21.4g}{modeled_ms / multi_ms:>7.2f}")
