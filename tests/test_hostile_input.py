"""Property-based hostile input: malformed search spaces, device profiles and LUTs.

Every generated file is broken on purpose (a missing key, a wrong type, a negative/huge/NaN value, an
unknown field or op, a duplicate, a bad encoding); each must give a WorkbenchError naming the file and
the field — through the CLI: one line, exit code 2, no traceback.
"""
import copy
import csv
import io
import math
import shutil

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from workbench import WorkbenchError, load_profile, load_space
from workbench.cli import main

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

BAD_SCALARS = ["abc", None, {}, True, math.nan, math.inf, -math.inf, -1e30, 1e30, -7]
BAD_CHOICES = [[], ["x"], [3, 3], [-3], [1e30], [math.nan], "seven", {"a": 1}]

SPACE_FIELDS = {  # (path into the YAML, leaf name the error must mention) for the sensor-imu space
    "sensor-imu": [("input", "channels"), ("input", "length"), ("classes",), ("blocks", "count"),
                   ("blocks", "width"), ("blocks", "kernel"), ("blocks", "pool")],
    "vision": [("input", "resolution"), ("stem", "width"), ("stem", "kernel"), ("head", "width"),
               ("stages", 0, "depth"), ("stages", 1, "width"), ("stages", 2, "expand"), ("stages", 3, "stride")],
    "audio-kws": [("input", "frames"), ("input", "features"), ("stem", "width"), ("blocks", "count"),
                  ("blocks", "kernel")],
}
PROFILE_FIELDS = ["clock_mhz", "sram_kb", "flash_kb", "reserved_sram_kb", "per_layer_flash_bytes",
                  "per_inference_ms", "precisions", "device_class", "name", "runtime"]


def _set(doc, path, value):
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


def _delete(doc, path):
    for key in path[:-1]:
        doc = doc[key]
    del doc[path[-1]]


def _assert_clear(exc_info, file, field):
    message = str(exc_info.value)
    assert message.startswith(str(file)), message
    assert str(field) in message, message
    assert "\n" not in message


@SETTINGS
@given(space=st.sampled_from(sorted(SPACE_FIELDS)), data=st.data(),
       value=st.sampled_from(BAD_SCALARS + BAD_CHOICES))
def test_malformed_space_values(tmp_path, space, data, value):
    path = data.draw(st.sampled_from(SPACE_FIELDS[space]))
    doc = yaml.safe_load((ROOT / "search_spaces" / f"{space}.yaml").read_text())
    _set(doc, path, value)
    file = tmp_path / f"{space}-bad.yaml"
    file.write_text(yaml.safe_dump(doc, allow_unicode=True))
    with pytest.raises(WorkbenchError) as info:
        load_space(file)
    _assert_clear(info, file, path[-1])


@SETTINGS
@given(space=st.sampled_from(sorted(SPACE_FIELDS)), data=st.data(), mode=st.sampled_from(["delete", "unknown"]))
def test_missing_and_unknown_space_keys(tmp_path, space, data, mode):
    doc = yaml.safe_load((ROOT / "search_spaces" / f"{space}.yaml").read_text())
    if mode == "delete":
        path = data.draw(st.sampled_from([p for p in SPACE_FIELDS[space] if p[-1] not in ("classes", "pool", "channels")
                                          and not (space == "vision" and p[-1] in ("kernel", "stride", "expand"))]
                                         + [("name",), ("family",)]))
        _delete(doc, path)
        field = path[-1]
    else:
        parent = data.draw(st.sampled_from([(), ("input",), ("blocks",) if space != "vision" else ("head",)]))
        field = data.draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=3, max_size=12)
                          .filter(lambda k: k not in ("name", "description", "dataset", "family", "classes", "input",
                                                      "stem", "stages", "head", "blocks", "quantization", "width",
                                                      "kernel", "stride", "count", "pool", "pool_type", "channels",
                                                      "length", "resolution", "frames", "features")))
        _set(doc, (*parent, field), 1)
    file = tmp_path / "space.yaml"
    file.write_text(yaml.safe_dump(doc))
    with pytest.raises(WorkbenchError) as info:
        load_space(file)
    _assert_clear(info, file, field)


@pytest.mark.parametrize("text, expected", [
    ("name: [unclosed", "malformed YAML"),
    ("a: &x [*x]\n", "name: missing required field"),            # a cycle through an alias
    ("name: v\nfamily: cnn1d\ninput: &i {channels: *i, length: 9}\nblocks: {count: [1], width: [4], kernel: [3]}\n",
     "input.channels: expected an integer"),
    ("!!python/object/apply:os.system ['true']\n", "malformed YAML"),  # data only, never code
    ("- just\n- a list\n", "expected a mapping at the top level"),
    ("", "expected a mapping at the top level"),
])
def test_structurally_broken_spaces(tmp_path, text, expected):
    file = tmp_path / "space.yaml"
    file.write_text(text)
    with pytest.raises(WorkbenchError, match=expected):
        load_space(file)


def test_wrong_encoding(tmp_path):
    file = tmp_path / "space.yaml"
    file.write_bytes(b"name: \xff\xfe\x00bad\n")
    with pytest.raises(WorkbenchError, match="not UTF-8"):
        load_space(file)


def _profile_dir(tmp_path, name="stm32f746"):
    dst = tmp_path / "prof"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(ROOT / "hw_profiles" / name, dst)
    return dst


@SETTINGS
@given(field=st.sampled_from(PROFILE_FIELDS), value=st.sampled_from(BAD_SCALARS + [["int3"], [], "mcu-ish"]))
def test_malformed_profile_values(tmp_path, field, value):
    folder = _profile_dir(tmp_path)
    doc = yaml.safe_load((folder / "profile.yaml").read_text())
    if field in ("name", "runtime") and isinstance(value, str) and value:
        value = None  # any non-empty string is a valid name
    if field == "device_class" and value in ("mcu", "cpu", "accelerator"):
        value = "toaster"
    doc[field] = value
    (folder / "profile.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(WorkbenchError) as info:
        load_profile(folder)
    _assert_clear(info, folder / "profile.yaml", field)


def _lut_rows(folder):
    with (folder / "lut.csv").open() as fh:
        return list(csv.reader(fh))


def _write_rows(folder, rows):
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    (folder / "lut.csv").write_text(out.getvalue())


LUT_MUTATIONS = {  # column index → bad values; the error must name the column
    "mean_ms": (5, ["nan", "-1", "0", "abc", "", "inf", "1e999"]),
    "std_ms": (6, ["nan", "-0.5", "x"]),
    "count": (7, ["0", "-3", "2.5", "many"]),
    "macs": (3, ["-1", "1.5", "lots"]),
    "kind": (1, ["attention", "", "Conv2D"]),
    "prec": (2, ["int3", "", "fp16"]),
    "source": (8, ["guessed", "", "MEASURED"]),
    "reference": (9, ["", "   "]),
}


@SETTINGS
@given(column=st.sampled_from(sorted(LUT_MUTATIONS)), data=st.data(), row=st.integers(1, 2000))
def test_malformed_lut_rows(tmp_path, column, data, row):
    folder = _profile_dir(tmp_path)
    rows = _lut_rows(folder)
    index, values = LUT_MUTATIONS[column]
    rows[row][index] = data.draw(st.sampled_from(values))
    _write_rows(folder, rows)
    with pytest.raises(WorkbenchError) as info:
        load_profile(folder)
    message = str(info.value)
    assert message.startswith(f"{folder / 'lut.csv'}:{row + 1}"), message
    assert column in message or (column in ("kind", "prec") and "key" in message), message


@pytest.mark.parametrize("mutate, expected", [
    (lambda rows: rows + [rows[5]], "duplicate entry"),
    (lambda rows: [rows[0]] + [r[:-1] for r in rows[1:]], "wrong number of columns"),
    (lambda rows: [rows[0]] + [r + ["extra"] for r in rows[1:]], "wrong number of columns"),
    (lambda rows: [["key", "latency"]] + rows[1:], "header must be"),
    (lambda rows: rows[:1], "LUT has no entries"),
])
def test_structurally_broken_luts(tmp_path, mutate, expected):
    folder = _profile_dir(tmp_path)
    _write_rows(folder, mutate(_lut_rows(folder)))
    with pytest.raises(WorkbenchError, match=expected):
        load_profile(folder)


@SETTINGS
@given(kind=st.sampled_from(["space", "profile", "lut"]), junk=st.binary(min_size=1, max_size=64))
def test_cli_never_shows_a_traceback(tmp_path, capsys, kind, junk):
    folder = _profile_dir(tmp_path)
    space = tmp_path / "space.yaml"
    shutil.copy(ROOT / "search_spaces" / "sensor-imu.yaml", space)
    target = {"space": space, "profile": folder / "profile.yaml", "lut": folder / "lut.csv"}[kind]
    target.write_bytes(copy.copy(target.read_bytes()[:200]) + junk + b"\n\xff")  # truncated, then garbage
    code = main(["search", "--space", str(space), "--device", str(folder), "--trials", "1",
                 "--storage", f"sqlite:///{tmp_path / 'x.db'}"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
