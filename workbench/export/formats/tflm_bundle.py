"""``--format tflm``: a TensorFlow Lite Micro deployment bundle for a microcontroller.

Written after the full-INT8 ``.tflite`` has been verified and run in TFLM (see
:mod:`workbench.export.formats.tflm_check`), into ``<name>_tflm/`` beside it:

- ``model_data.h`` / ``model_data.cc`` — the ``.tflite`` bytes as a 16-byte aligned C array (TFLM reads
  the flatbuffer in place; its buffers want that alignment);
- ``model_settings.h`` — arena size (the arena TFLM measured for this file, plus the kernel scratch the
  memory model predicts for CMSIS-NN, plus a stated margin), input/output shapes and quantisation;
- ``model_io.h`` / ``model_io.c`` — plain C: float → int8 input quantisation, int8 → float output
  dequantisation, arg-max (no TFLM headers: compiles with any C compiler, e.g. ``arm-none-eabi-gcc``);
- ``op_resolver.h`` — a ``MicroMutableOpResolver`` with exactly the operators the file uses;
- ``inference.cc`` — an example: interpreter set-up on a static arena, quantise, invoke, dequantise;
- ``README.md`` — what each file is, how the arena size was chosen, and the build line for the export's
  device: ``TARGET_ARCH`` is read from its profile's description (:func:`target_arch`), and the files
  it lists are the files written.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from workbench._infra.errors import WorkbenchError
from workbench.hardware.memory import Runtime, arena, graph_of_file

ARENA_MARGIN = 0.10  # headroom over the measured arena: a different TFLM build or kernel set may need more
ARENA_ROUND = 1024
BYTES_PER_LINE = 16

# TFLite builtin operator → MicroMutableOpResolver method
RESOLVER_METHODS = {
    "ADD": "AddAdd", "AVERAGE_POOL_2D": "AddAveragePool2D", "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize",
    "FULLY_CONNECTED": "AddFullyConnected", "HARD_SWISH": "AddHardSwish", "LOGISTIC": "AddLogistic",
    "MAX_POOL_2D": "AddMaxPool2D", "MEAN": "AddMean", "MUL": "AddMul", "PAD": "AddPad", "QUANTIZE": "AddQuantize",
    "RELU": "AddRelu", "RELU6": "AddRelu6", "RESHAPE": "AddReshape", "SOFTMAX": "AddSoftmax",
    "SQUEEZE": "AddSqueeze", "TRANSPOSE": "AddTranspose", "EXPAND_DIMS": "AddExpandDims", "SUB": "AddSub",
}


def target_arch(profile) -> str | None:
    """TFLM's ``TARGET_ARCH`` for ``profile``'s core (``cortex-m7``; ``cortex-m4+fp`` for a Cortex-M4F), read
    from its description; None when the profile names no Cortex-M core (a Linux board, the host, none)."""
    found = re.search(r"Cortex-M(\d+)(F?)", getattr(profile, "description", "") or "")
    if not found:
        return None
    return f"cortex-m{found.group(1)}{'+fp' if found.group(2) else ''}"


def write_bundle(path: Path, arch, entry: dict, profile=None) -> dict:
    """Write the bundle for the verified int8 file ``path`` (``profile``: the export's device, for the
    README's build line); returns manifest fields."""
    path = Path(path)
    data = path.read_bytes()
    ops = sorted({op.code for op in graph_of_file(path).ops})
    missing = [op for op in ops if op not in RESOLVER_METHODS]
    if missing:
        raise WorkbenchError(f"tflm: the model uses {', '.join(missing)}, which the bundle's op resolver "
                             f"does not know how to register")
    measured = entry.get("tflm", {}).get("arena_bytes")
    if not measured:
        raise WorkbenchError("tflm: TFLite Micro did not run the model, so the bundle has no measured arena size")
    cmsis_scratch = arena(graph_of_file(path), Runtime(kernels="cmsis-nn")).scratch
    arena_bytes = _round_up(int((measured + cmsis_scratch) * (1 + ARENA_MARGIN)), ARENA_ROUND)
    io = entry["interface"]
    stem = path.name.removesuffix(".tflite").removesuffix(".tflm").removesuffix(".int8")
    folder = path.parent / f"{stem}_tflm"
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "model_data.h": _model_data_h(),
        "model_data.cc": _model_data_cc(data),
        "model_settings.h": _settings_h(io, arena_bytes, measured, cmsis_scratch),
        "model_io.h": _io_h(),
        "model_io.c": _io_c(),
        "op_resolver.h": _resolver_h(ops),
        "inference.cc": _inference_cc(),
    }
    arena_parts = {"total": arena_bytes, "measured": measured, "scratch": cmsis_scratch}
    files["README.md"] = _readme(path.name, arch, ops, arena_parts, len(data), io, sorted(files), profile)
    for name, text in files.items():
        (folder / name).write_text(text)
    return {"bundle": {"folder": folder.name, "files": sorted(files), "ops": ops, "arena_bytes": arena_bytes,
                       "target_arch": target_arch(profile),
                       "arena": {"measured_tflm_host": measured, "cmsis_nn_scratch_predicted": cmsis_scratch,
                                 "margin": ARENA_MARGIN, "rounded_to": ARENA_ROUND},
                       "model_bytes": len(data)}}


def _round_up(n: int, to: int) -> int:
    return -(-n // to) * to


def _model_data_h() -> str:
    return """// The model flatbuffer (.tflite) as a C array; generated by workbench export --format tflm.
#ifndef MODEL_DATA_H_
#define MODEL_DATA_H_

#ifdef __cplusplus
extern "C" {
#endif

extern const unsigned char g_model_data[];
extern const unsigned int g_model_data_len;

#ifdef __cplusplus
}
#endif

#endif  // MODEL_DATA_H_
"""


def _model_data_cc(data: bytes) -> str:
    rows = []
    for i in range(0, len(data), BYTES_PER_LINE):
        rows.append("  " + ", ".join(f"0x{b:02x}" for b in data[i:i + BYTES_PER_LINE]) + ",")
    body = "\n".join(rows)
    return f"""// The model flatbuffer (.tflite), {len(data)} bytes, 16-byte aligned (TFLM reads it in place).
#include "model_data.h"

extern "C" {{

alignas(16) const unsigned char g_model_data[] = {{
{body}
}};
const unsigned int g_model_data_len = {len(data)};

}}
"""


def _dims(shape) -> str:
    return ", ".join(str(int(s)) for s in shape)


def _settings_h(io: dict, arena_bytes: int, measured: int, scratch: int) -> str:
    inp, out = io["input"], io["output"]
    n_in = int(np.prod(inp["shape"]))
    n_out = int(np.prod(out["shape"]))
    return f"""// Model settings; generated by workbench export --format tflm.
#ifndef MODEL_SETTINGS_H_
#define MODEL_SETTINGS_H_

// Arena: {measured} B measured by TFLite Micro (tflite-micro host build, reference kernels)
// + {scratch} B of CMSIS-NN kernel scratch predicted by workbench.hardware.memory
// + {int(ARENA_MARGIN * 100)} % margin, rounded up to {ARENA_ROUND} B.
#define MODEL_ARENA_BYTES {arena_bytes}

// Input {inp['dtype']} [{_dims(inp['shape'])}] (channel-last)
#define MODEL_INPUT_ELEMS {n_in}
#define MODEL_INPUT_SCALE {inp['quantization']['scale']:.9g}f
#define MODEL_INPUT_ZERO_POINT {inp['quantization']['zero_point']}

// Output {out['dtype']} [{_dims(out['shape'])}] (logits)
#define MODEL_OUTPUT_ELEMS {n_out}
#define MODEL_OUTPUT_SCALE {out['quantization']['scale']:.9g}f
#define MODEL_OUTPUT_ZERO_POINT {out['quantization']['zero_point']}

#endif  // MODEL_SETTINGS_H_
"""


def _io_h() -> str:
    return """// Input quantisation / output dequantisation for the model (plain C, no TFLM headers).
#ifndef MODEL_IO_H_
#define MODEL_IO_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// x[i] / MODEL_INPUT_SCALE + MODEL_INPUT_ZERO_POINT, rounded and clamped to int8.
void model_quantize_input(const float* x, int8_t* q, int n);
// (q[i] - MODEL_OUTPUT_ZERO_POINT) * MODEL_OUTPUT_SCALE.
void model_dequantize_output(const int8_t* q, float* y, int n);
// Index of the largest value (the predicted class).
int model_argmax(const float* y, int n);

#ifdef __cplusplus
}
#endif

#endif  // MODEL_IO_H_
"""


def _io_c() -> str:
    return """// Input quantisation / output dequantisation (plain C99; compiles with arm-none-eabi-gcc).
#include "model_io.h"

#include "model_settings.h"

void model_quantize_input(const float* x, int8_t* q, int n) {
  for (int i = 0; i < n; ++i) {
    float v = x[i] / MODEL_INPUT_SCALE;
    long r = (long)(v >= 0.0f ? v + 0.5f : v - 0.5f) + MODEL_INPUT_ZERO_POINT;
    if (r < -128) r = -128;
    if (r > 127) r = 127;
    q[i] = (int8_t)r;
  }
}

void model_dequantize_output(const int8_t* q, float* y, int n) {
  for (int i = 0; i < n; ++i) {
    y[i] = (float)((int)q[i] - MODEL_OUTPUT_ZERO_POINT) * MODEL_OUTPUT_SCALE;
  }
}

int model_argmax(const float* y, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i) {
    if (y[i] > y[best]) best = i;
  }
  return best;
}
"""


def _resolver_h(ops: list[str]) -> str:
    adds = "\n".join(f"  if (resolver.{RESOLVER_METHODS[op]}() != kTfLiteOk) return kTfLiteError;  // {op}"
                     for op in ops)
    return f"""// The operators this model uses, and only those ({len(ops)}); generated by workbench export --format tflm.
#ifndef MODEL_OP_RESOLVER_H_
#define MODEL_OP_RESOLVER_H_

#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"

constexpr int kModelOpCount = {len(ops)};
using ModelOpResolver = tflite::MicroMutableOpResolver<kModelOpCount>;

inline TfLiteStatus RegisterModelOps(ModelOpResolver& resolver) {{
{adds}
  return kTfLiteOk;
}}

#endif  // MODEL_OP_RESOLVER_H_
"""


def _inference_cc() -> str:
    return """// Example: run the model once on float features; generated by workbench export --format tflm.
// Build it inside a TFLite Micro project (tensorflow/lite/micro), with model_data.cc and model_io.c.
#include <stdint.h>

#include "model_data.h"
#include "model_io.h"
#include "model_settings.h"
#include "op_resolver.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {
alignas(16) uint8_t g_arena[MODEL_ARENA_BYTES];
}  // namespace

// Classifies MODEL_INPUT_ELEMS float features (channel-last); writes MODEL_OUTPUT_ELEMS dequantised
// logits to `logits` and returns the predicted class, or -1 on an error.
int ModelClassify(const float* features, float* logits) {
  static ModelOpResolver resolver;
  static bool registered = false;
  if (!registered) {
    if (RegisterModelOps(resolver) != kTfLiteOk) return -1;
    registered = true;
  }
  const tflite::Model* model = tflite::GetModel(g_model_data);
  static tflite::MicroInterpreter interpreter(model, resolver, g_arena, MODEL_ARENA_BYTES);
  static bool allocated = false;
  if (!allocated) {
    if (interpreter.AllocateTensors() != kTfLiteOk) return -1;  // arena too small or an op missing
    allocated = true;
  }
  TfLiteTensor* input = interpreter.input(0);
  model_quantize_input(features, input->data.int8, MODEL_INPUT_ELEMS);
  if (interpreter.Invoke() != kTfLiteOk) return -1;
  model_dequantize_output(interpreter.output(0)->data.int8, logits, MODEL_OUTPUT_ELEMS);
  return model_argmax(logits, MODEL_OUTPUT_ELEMS);
}
"""


def _readme(model_name: str, arch, ops: list[str], arena: dict, n_bytes: int, io: dict, sources: list[str],
            profile) -> str:
    """The bundle's README; ``sources`` are the files written beside it, ``profile`` the export's device."""
    core = target_arch(profile)
    device = getattr(profile, "name", None)
    if core:
        target = f"TARGET_ARCH={core}"
        for_device = f"the export's device, `{device}`"
    else:
        target = "TARGET_ARCH=<your core, e.g. cortex-m7>"
        for_device = (f"your core (the export's device, `{device}`, is not a Cortex-M)" if device
                      else "your core (the export named no device)")
    listed = ", ".join(f"`{name}`" for name in sources)
    return f"""# TFLite Micro bundle for `{model_name}`

Architecture: `{arch.summary()}`. Generated by `workbench export --format tflm`.

| file | what |
|---|---|
| `model_data.h`, `model_data.cc` | the {n_bytes:,}-byte `.tflite` as a 16-byte aligned C array (`g_model_data`) |
| `model_settings.h` | `MODEL_ARENA_BYTES`, input/output sizes and quantisation |
| `model_io.h`, `model_io.c` | plain C: quantise float input to int8, dequantise int8 logits, arg-max |
| `op_resolver.h` | `MicroMutableOpResolver<{len(ops)}>` with exactly: {', '.join(ops)} |
| `inference.cc` | example `ModelClassify(features, logits)` on a static arena |

## Arena size: {arena['total']:,} bytes

- {arena['measured']:,} B: the arena TensorFlow Lite Micro used for this file (tflite-micro host build, reference
  kernels, 64-bit; a 32-bit Cortex-M build needs less for its persistent structs);
- {arena['scratch']:,} B: kernel scratch that CMSIS-NN's optimised kernels request beyond the plan (predicted by
  `workbench.hardware.memory` from CMSIS-NN's buffer-size functions; 0 = fits in the plan's gaps);
- +{int(ARENA_MARGIN * 100)} % margin, rounded up to {ARENA_ROUND} B.

If `AllocateTensors()` fails, TFLM logs the bytes it needed: raise `MODEL_ARENA_BYTES` to that.

## Input and output

Input `{io['input']['dtype']}` {io['input']['shape']} channel-last, scale {io['input']['quantization']['scale']:.6g},
zero point {io['input']['quantization']['zero_point']}; output `{io['output']['dtype']}` {io['output']['shape']}
(logits), scale {io['output']['quantization']['scale']:.6g}, zero point {io['output']['quantization']['zero_point']}.

## Build

Add the {_count(len(sources))} files of this bundle ({listed}) to a TFLite Micro application (e.g. copy them
next to `tensorflow/lite/micro/examples/hello_world` and list the `.cc` and `.c` ones in its Makefile), link
the TFLM library built for {for_device} (`make -f tensorflow/lite/micro/tools/make/Makefile
TARGET=cortex_m_generic {target} OPTIMIZED_KERNEL_DIR=cmsis_nn microlite`) and call `ModelClassify`.
`model_data.cc` and `model_io.c` need no TFLM headers.
"""


def _count(n: int) -> str:
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    return words[n] if n < len(words) else str(n)
