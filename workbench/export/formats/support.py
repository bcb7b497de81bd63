"""What a format can take, decided before anything is trained or written.

Anything a format cannot represent at all — an op kind its writer has no mapping for, a weight width
it can neither store nor substitute (e.g. 2-bit), activations other than 8 bits — is a
:class:`~workbench._infra.errors.WorkbenchError` naming the op, its stage and the format. What it can
substitute (a 4-bit stage stored as int8 in TFLite) is returned as a documented fallback. Missing
optional converters (the ``export`` extras) are named with the install command.
"""
from __future__ import annotations

import importlib.util
from typing import Sequence

from workbench._infra.errors import WorkbenchError
from workbench.export.formats import FORMATS, Format
from workbench.model.arch import Architecture

EXPORT_INSTALL = 'pip install -e ".[export]"  (from a checkout; else pip install "tinyml-workbench[export]")'


def check_support(arch: Architecture, fmt: Format) -> list[str]:
    """Raise for what ``fmt`` cannot represent; return the documented fallbacks it needs."""
    fallbacks: dict[tuple, list[int]] = {}
    substitutes = dict(fmt.weight_fallback)
    for i, op in enumerate(arch.ops):
        where = f"op {i} ({op.kind}{', stage ' + op.stage if op.stage else ''})"
        if op.kind not in fmt.op_kinds:
            raise WorkbenchError(f"{where} cannot be exported to {fmt.name}: its writer has no mapping for "
                                 f"'{op.kind}' (it handles {', '.join(sorted(fmt.op_kinds))})")
        if not fmt.quantized:
            continue
        if op.abits not in (8, 32):
            raise WorkbenchError(f"{where} has {op.abits}-bit activations; {fmt.name} stores 8-bit activations only")
        if op.wbits >= 32 or op.wbits in fmt.weight_bits or not op.spec.has_weights:
            continue
        if op.wbits in substitutes:
            fallbacks.setdefault((op.stage, op.wbits, substitutes[op.wbits]), []).append(i)
            continue
        raise WorkbenchError(f"{where} has {op.wbits}-bit weights, which {fmt.name} cannot store "
                             f"(it stores {'/'.join(str(b) for b in sorted(fmt.weight_bits))}-bit weights)")
    return [f"stage {stage or '-'} (ops {_ranges(ops)}): {w}-bit weights stored as int{s} "
            f"({fmt.family} builtin kernels take int{s} filters)" for (stage, w, s), ops in fallbacks.items()]


def _ranges(ix: list[int]) -> str:
    return f"{ix[0]}-{ix[-1]}" if len(ix) > 1 else str(ix[0])


def parse_formats(text: str | Sequence[str]) -> list[str]:
    """``"onnx,tflite-int8"`` (or a list) → validated, de-duplicated format names in order."""
    names = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    if not names:
        raise WorkbenchError(f"--format: give at least one of {', '.join(FORMATS)}")
    for n in names:
        FORMATS.check(n)
    return list(dict.fromkeys(names))


def require_converters(formats: Sequence[str]) -> None:
    """Name the missing optional packages of ``formats`` with the install command, before any work."""
    missing: dict[str, list[str]] = {}
    for name in formats:
        for module in FORMATS.get(name).requires:
            if importlib.util.find_spec(module) is None:
                missing.setdefault(module, []).append(name)
    if missing:
        needs = "; ".join(f"{m} (for {', '.join(f)})" for m, f in missing.items())
        raise WorkbenchError(f"--format: missing optional package(s) {needs}: {EXPORT_INSTALL}")
