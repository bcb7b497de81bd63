"""The ``profile.yaml`` of a measured host (``workbench profile``) and the text its LUT rows cite.

Values are written by the ``yaml`` library, never pasted into YAML text: a CPU model name, a
runtime version or a folder name may hold ``:``, ``#``, quotes, or read as a number or boolean
(a folder called ``1234`` or ``yes``), any of which would change or break the file when pasted
into an f-string. The comments a reader needs stay, between the dumped entries. Every entry is
one line (flow style, no wrapping), so the tools that rewrite one line later
(:func:`workbench.hardware.latency_model.set_per_inference_ms`, :func:`set_measured_on`) find it.
"""
from __future__ import annotations

import datetime
import os
import re
from pathlib import Path
from typing import Sequence

import yaml

from workbench._infra.onnx_graph import settings_text
from workbench._infra.timing import statistic
from workbench.hardware.machine import cpu_facts, this_machine

MEMORY = {"kernels": "reference", "pointer_bytes": 8,
          "source": "no runtime code counted: the runtime is an installed library, not part of the model's storage"}
MEMORY_COMMENT = """# Peak SRAM / flash: what the int8 export needs in TensorFlow Lite Micro's 64-bit host build (reference
# kernels; the configuration every tflite-int8 export is checked against). onnxruntime allocates
# differently; next to this device's budget the difference does not decide what fits."""
_MEASURED_ON_LINE = re.compile(r"^measured_on:.*$", re.MULTILINE)


def yaml_entries(mapping: dict) -> str:
    """``mapping`` as YAML text, keys in the given order, one line per entry: a list or a mapping of
    scalars in flow style (``[fp32, int8]``, ``{cpu: …, cores: 2}``), never wrapped."""
    return "".join(yaml.safe_dump({key: value}, sort_keys=False, width=float("inf"), allow_unicode=True,
                                  default_flow_style=None if isinstance(value, (dict, list)) else False)
                   for key, value in mapping.items())


def measured_on_line(machine: dict | None = None) -> str:
    """The ``measured_on`` entry of a host profile: the machine its LUT belongs to (workbench.hardware.machine
    compares it with the machine the profile is used on, and says so when they differ)."""
    facts = machine or this_machine()
    on = {"cpu": str(facts["cpu"]), "cores": int(facts["cores"]), "runtime": str(facts["runtime"])}
    return yaml_entries({"measured_on": on}).strip()


def set_measured_on(profile_yaml: Path, machine: dict) -> None:
    """Rewrite (or append) the ``measured_on`` line of a host profile.yaml, leaving the rest as it is."""
    text = Path(profile_yaml).read_text(encoding="utf-8")
    line = measured_on_line(machine)
    text = (_MEASURED_ON_LINE.sub(lambda _: line, text, count=1) if _MEASURED_ON_LINE.search(text)
            else text.rstrip("\n") + "\n" + line + "\n")
    Path(profile_yaml).write_text(text, encoding="utf-8")


def lut_reference(warmup: int, repeats: int, per_op_ms: float) -> str:
    """Where every measured LUT row comes from: machine, runtime settings, statistic, correction, day."""
    model, mhz, _ = cpu_facts()
    day = datetime.date.today().isoformat()
    return (f"{model} @ {mhz:g} MHz; {settings_text()}; warmup {warmup}, {statistic()} ({repeats} runs) "
            f"minus {per_op_ms * 1e3:.2f} us one-op-graph overhead (calibration.json); {day}")


def profile_yaml_text(name: str, precisions: Sequence[str], per_op_ms: float, per_inference_ms: float) -> str:
    """The whole profile.yaml of a host measured here with onnxruntime (see the module docstring)."""
    import onnxruntime as ort  # heavy: onnxruntime

    model, mhz, mem_kb = cpu_facts()
    head = {"name": name,
            "description": (f"This host ({model}, {os.cpu_count()} cores) running onnxruntime {ort.__version__} on "
                            f"one thread; every LUT entry measured. A host keeps the model in RAM, so sram_kb and "
                            f"flash_kb are both MemTotal (no real limit)."),
            "device_class": "cpu", "runtime": f"onnxruntime {ort.__version__} CPU (1 thread)",
            "clock_mhz": float(mhz), "sram_kb": int(mem_kb), "flash_kb": int(mem_kb),
            "reserved_sram_kb": 0, "reserved_flash_kb": 0, "precisions": list(precisions), "lut": "lut.csv"}
    return "\n".join([
        f"# Written by workbench.calibration.profiler.profile_device on {datetime.date.today().isoformat()}.",
        yaml_entries(head).rstrip("\n"),
        f"# LUT entries are one-op graph times minus {per_op_ms:.5f} ms (what a chained op does not pay);",
        "# a whole model also pays session.run's overhead once (measured, see calibration.json):",
        yaml_entries({"per_inference_ms": round(float(per_inference_ms), 6)}).rstrip("\n"),
        "# The machine every LUT entry was measured on; used elsewhere, the workbench says so once.",
        measured_on_line(),
        MEMORY_COMMENT,
        yaml.safe_dump({"memory": MEMORY}, sort_keys=False, width=float("inf")),
    ])


def write_profile_yaml(out_dir: Path, precisions: Sequence[str], per_op_ms: float, per_inference_ms: float) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "profile.yaml"
    path.write_text(profile_yaml_text(out_dir.resolve().name, precisions, per_op_ms, per_inference_ms),
                    encoding="utf-8")
    return path
