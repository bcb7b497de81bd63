"""Hostile input: malformed search spaces, device profiles, LUTs, data, weights and export paths.

In-process, property-based: every generated file is broken on purpose (a missing key, a wrong type, a
negative/huge/NaN value, an unknown field or op, a duplicate, a bad encoding); each must give a
WorkbenchError naming the file and the field.

Through the CLI, under a real memory limit: every class of ``hostile_cases`` (alias bombs, 20,000-deep
nesting, over-size files, 10-million-row LUTs, profile paths out of their folder, .npz headers that
declare terabytes, decompression bombs, pickled exploits as weights, unusable ``--out`` paths, …) runs
in a forked child with ``RLIMIT_AS`` = its size + 768 MiB and a 60 s limit, and must exit 2 with exactly
one ``error:`` line on stderr that names the file or field, no traceback — and an exploit must not run.
"""
import copy
import csv
import io
import math
import random
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import hostile_cases as hc
import hostile_extremes as hx
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
    ("a: &x [*x]\n", "an infinite tree"),            # a cycle through an alias
    ("name: v\nfamily: cnn1d\ninput: &i {channels: *i, length: 9}\nblocks: {count: [1], width: [4], kernel: [3]}\n",
     "an infinite tree"),
    ("a: &x [1, 2]\nb: {<<: {k: *x}, j: 2}\nname: v\n", "family: missing required field"),  # plain aliases are fine
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


# ---------------------------------------------------------------- through the CLI, with a memory limit per case

CASE_MEM_MB = 768
PER_CLASS = {"data-vs-space": 1}  # helper tests cover these checks in depth; one case here proves the path


@pytest.fixture(scope="module")
def runner():
    with hc.Runner(mem_mb=CASE_MEM_MB, timeout_s=60) as r:
        yield r


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile")


def _assert_refused(runner, case):
    outcome = runner.run(case)
    assert not outcome.problems(case), (case.label, outcome.problems(case), outcome.stderr[-3000:])
    if case.marker:
        assert not Path(case.marker).exists(), f"{case.label}: the pickled code ran"
    return outcome


@pytest.mark.parametrize("klass", sorted(hc.GENERATORS))
def test_every_hostile_class_is_one_line(runner, workdir, klass):
    """Two cases of each class (seeded), the first kinds of each generator's list."""
    cases = hc.GENERATORS[klass](workdir / klass, random.Random(klass), PER_CLASS.get(klass, 2))
    for case in cases:
        _assert_refused(runner, case)


@pytest.fixture(scope="module")
def study_db(runner, workdir):
    return hc.make_study(workdir, runner)


@pytest.mark.parametrize("klass, kinds", [("export-out", 3), ("weights", 4)])
def test_export_inputs_are_one_line(runner, workdir, study_db, klass, kinds):
    """--out that cannot be a folder, and weights files: exploits (not run), integer keys, non-tensors."""
    for case in hc.STUDY_GENERATORS[klass](workdir / klass, random.Random(klass), kinds, study_db):
        _assert_refused(runner, case)


EXTREME_MARKS = {  # what the one line must say for some kinds, beyond naming the flag or file
    "space-largest": "parameters", "workers": "CPU core", "sqlite-foreign": "another application",
    "journal-foreign": "journal",
}


@pytest.mark.parametrize("klass", sorted(hx.GENERATORS))
def test_extreme_classes_are_one_line(runner, workdir, study_db, klass):
    """Issue 27's four classes (numeric extremes, zero-size inputs, foreign content in a valid format, resource
    flags beyond the machine): every kind of each generator once, seeded by the class name; a foreign
    database must come out byte-for-byte unchanged (``Case.untouched``, judged by ``problems``)."""
    n = {"numeric-extremes": 21, "zero-size": 16, "foreign-content": 12, "resource-flags": 12}[klass]
    for case in hx.GENERATORS[klass](workdir / klass, random.Random(klass), n, study_db):
        outcome = _assert_refused(runner, case)
        mark = EXTREME_MARKS.get(case.label)
        assert mark is None or mark in outcome.stderr, (case.label, outcome.stderr)


CLI_SETTINGS = settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
_counter = iter(range(10 ** 9))


def _fresh(workdir, name):
    d = workdir / f"{name}-{next(_counter)}"
    d.mkdir(parents=True)
    return d


@CLI_SETTINGS
@given(fan=st.integers(2, 40), levels=st.integers(2, 30), seed=st.integers(0, 2 ** 16))
def test_property_alias_expansion_is_bounded(runner, workdir, fan, levels, seed):
    """Any alias fan-out: under the node limit the file is judged on its content, over it refused by the
    limit — either way one line naming the file, in bounded memory."""
    d = _fresh(workdir, "alias")
    lines = [f"l0: &l0 [{', '.join(['x'] * fan)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fan)}]" for i in range(1, levels)]
    argv, names = hc.yaml_targets(d, random.Random(seed), "\n".join(lines) + "\n")
    outcome = _assert_refused(runner, hc.Case("yaml-alias-bomb", f"{fan}^{levels}", argv, names, str(d)))
    from workbench._infra.yamlio import MAX_YAML_NODES

    if fan ** levels > 2 * MAX_YAML_NODES:
        assert "limit" in outcome.stderr


@CLI_SETTINGS
@given(depth=st.integers(65, 30_000), seed=st.integers(0, 2 ** 16))
def test_property_deep_nesting_is_refused(runner, workdir, depth, seed):
    d = _fresh(workdir, "deep")
    rng = random.Random(seed)
    argv, names = hc.yaml_targets(d, rng, hc.deep_yaml(rng, depth))
    outcome = _assert_refused(runner, hc.Case("yaml-deep-nesting", str(depth), argv, names, str(d)))
    assert "deeper than 64 levels" in outcome.stderr or "limit for a YAML file" in outcome.stderr  # 1,500 levels
    # of block indentation are over a MiB


@CLI_SETTINGS
@given(shape=st.lists(st.integers(0, 2 ** 36), min_size=1, max_size=4),
       dtype=st.sampled_from(["<f4", "<f8", "|u1", "<i8", "<c16"]),
       key=st.sampled_from(["x_train", "y_train", "x_test", "y_test", "classes"]),
       data=st.binary(max_size=64))
def test_property_npz_headers_are_checked_before_loading(runner, workdir, shape, dtype, key, data):
    """A member's header may declare any shape, with or without data behind it: never allocated blindly."""
    import numpy as np

    assume(math.prod(shape) * np.dtype(dtype).itemsize > len(data))  # the data behind the header falls short
    d = _fresh(workdir, "npz")
    arrays = hc.valid_arrays(random.Random(0))
    arrays.pop(key, None)
    path = hc.write_npz(d / "data.npz", arrays, {key: hc.npy_bytes(tuple(shape), dtype, data)})
    _assert_refused(runner, hc.Case("npz-declared-huge", f"{key} {shape}", hc.search_argv(d, data=path), str(path),
                                    str(d)))


@CLI_SETTINGS
@given(prefix=st.sampled_from(["/", "../", "../../", "./../", "sub/../../", "//"]),
       tail=st.text(alphabet="abcdefgh./_-", min_size=1, max_size=30),
       field=st.sampled_from(["lut", "latency_model"]))
def test_property_profile_files_stay_in_their_folder(runner, workdir, prefix, tail, field):
    d = _fresh(workdir, "paths")
    folder = hc.copy_profile(d)
    hc.edit_profile(folder, **{field: repr(prefix + tail)})  # quoted: the path is data, not YAML syntax
    _assert_refused(runner, hc.Case("profile-file-paths", prefix + tail, hc.search_argv(d, device=folder),
                                    str(folder), str(d)))


@CLI_SETTINGS
@given(length=st.integers(2049, 400_000), newline=st.booleans(), char=st.sampled_from("k,\"x\x00é"))
def test_property_long_lut_lines_fail_at_the_limit(runner, workdir, length, newline, char):
    d = _fresh(workdir, "lutline")
    folder = hc.copy_profile(d)
    lut = folder / "lut.csv"
    lut.write_text(lut.read_text()[:5000].rsplit("\n", 1)[0] + "\n" + char * length + ("\n" if newline else ""))
    _assert_refused(runner, hc.Case("lut-huge-or-binary", f"{length} x {char!r}", hc.search_argv(d, device=folder),
                                    str(lut), str(d)))


def test_outside_files_need_the_explicit_setting(tmp_path, monkeypatch):
    """A LUT shared between profile folders loads only with WORKBENCH_PROFILE_FILES_ANYWHERE=1."""
    from workbench.hardware.locations import OUTSIDE_FILES_ENV
    from workbench.hardware.profiles import _CACHE

    folder = _profile_dir(tmp_path)
    shutil.move(str(folder / "lut.csv"), str(tmp_path / "shared.csv"))
    text = (folder / "profile.yaml").read_text()
    (folder / "profile.yaml").write_text("\n".join(l for l in text.splitlines() if not l.startswith("lut:"))
                                         + "\nlut: ../shared.csv\n")
    monkeypatch.delenv(OUTSIDE_FILES_ENV, raising=False)
    with pytest.raises(WorkbenchError, match="leads outside the profile folder"):
        load_profile(folder)
    monkeypatch.setenv(OUTSIDE_FILES_ENV, "1")
    _CACHE.clear()
    assert load_profile(folder).latency.lut.path.endswith("shared.csv")
    _CACHE.clear()
