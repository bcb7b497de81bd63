"""Four more classes of hostile input for the CLI (issue 27): numeric extremes, zero-size inputs, well-formed
files of a storage format holding foreign content, and resource flags far above what the machine has.

Same contract as :mod:`hostile_cases` (whose runner and judge they use): each generator is
``fn(workdir, rng, n, db) -> list[Case]`` (``db``: a small trained study that the study commands read;
each case works on its own copy), every case is invalid by construction (exit 2, one ``error:`` line naming
the flag, field or file at fault), and a case may list files that must be byte-for-byte unchanged
afterwards (``Case.untouched``: a foreign SQLite database must not gain Optuna's tables).

Each class is a list of kinds; case ``i`` takes kind ``i`` (then seeded random ones), and every kind draws its
values from the seed (which huge number, which flag, which file), so two seeds try different inputs.
"""
from __future__ import annotations

import json
import os
import sqlite3
import zipfile
from pathlib import Path

import hostile_cases as hc
from hostile_cases import SPACES, Case, case_dir, copy_profile, edit_profile, search_argv

CORES = os.cpu_count() or 1


def _huge_int(rng) -> str:
    """An integer past 64 bits (or just past a signed/unsigned 64-bit edge)."""
    return str(rng.choice([2 ** 63, 2 ** 64, 2 ** rng.randint(65, 400), 10 ** rng.randint(20, 300),
                           int("9" * rng.randint(20, 120))]))


def _joined(argv: list[str]) -> list[str]:
    """``--flag -5`` as ``--flag=-5``: argparse would take a value that starts with '-' for another option."""
    out = []
    for item in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and item[:1] == "-" and item[1:2] not in ("-", ""):
            out[-1] = f"{out[-1]}={item}"
        else:
            out.append(item)
    return out


def _study_copy(d: Path, db: Path) -> Path:
    """A copy of the study (through SQLite's backup: the live file's WAL holds part of it)."""
    copy = d / "study.db"
    if not copy.exists():
        with sqlite3.connect(db) as source, sqlite3.connect(copy) as target:
            source.backup(target)
        source.close()
        target.close()
    return copy


def _study_argv(command: str, d: Path, db: Path) -> list[str]:
    return [command, "--study", "hostile", "--storage", f"sqlite:///{_study_copy(d, db)}"]


def _export_argv(d: Path, db: Path, *extra) -> list[str]:
    return _study_argv("export", d, db) + ["--trial", "0", "--format", "onnx", "--out", str(d / "out"), *extra]


def _space_with(d: Path, rng, value) -> tuple[Path, str]:
    """sensor-imu with one of its numeric fields set to ``value``; (file, field)."""
    import yaml

    doc = yaml.safe_load((SPACES / "sensor-imu.yaml").read_text())
    where, field = rng.choice([("input", "channels"), ("input", "length"), ("blocks", "width"), ("blocks", "kernel"),
                               (None, "classes"), ("blocks", "count")])
    if where is None:
        doc[field] = value
    else:
        doc[where][field] = value if where == "input" else [value]
    path = d / "space.yaml"
    path.write_text(yaml.safe_dump(doc).replace("'", ""))  # unquoted: 1e999 and .inf are YAML floats
    return path, field


def _measurements(d: Path, ms: str) -> Path:
    path = d / "measured.csv"
    path.write_text(f"model,ms,source\nmlperf-kws,{ms},hostile\nmlperf-ad,3.5,hostile\n")
    return path


def _each_case(workdir, klass: str, kinds: list[str], n: int, rng):
    """``n`` cases of ``klass``: (index, its folder, its kind), every kind once first, then seeded picks."""
    for i in range(n):
        yield i, case_dir(workdir, klass, i), kinds[i] if i < len(kinds) else rng.choice(kinds)


# ------------------------------------------------------------------------------------------ numeric extremes

def gen_numeric_extremes(workdir, rng, n, db):
    """Values that overflow when cast: flags past 64 bits, non-finite floats, YAML/CSV numbers of 1e999 or 2**80."""
    kinds = ["search-seed", "search-trials", "search-epochs", "search-population", "latency-budget", "heartbeat",
             "repeat-flags", "train-sram-budget", "space-yaml", "profile-yaml", "lut-macs", "measurements-ms",
             "calibrate-strength", "kit-seed", "trial-number", "export-epochs", "train-cost-batch", "repeats-top",
             "profile-limit", "worker-trials", "pareto-whatif"]
    cases = []
    for i, d, kind in _each_case(workdir, "numeric-extremes", kinds, n, rng):
        huge = _huge_int(rng)
        if kind.startswith("search-"):
            flag = "--" + kind.split("-")[1]
            argv, names = search_argv(d) + [flag, huge], flag
        elif kind == "latency-budget":
            value = rng.choice(["1e309", "nan", "-inf", "inf", "-1e400", "1e-400", "NaN", "-0"])
            argv, names = search_argv(d) + ["--latency-budget", value], "--latency-budget"
        elif kind == "heartbeat":
            argv, names = search_argv(d) + ["--heartbeat", rng.choice([huge, "-" + huge])], "--heartbeat"
        elif kind == "repeat-flags":  # a --repeat-top past the front takes the whole front: only a negative one
            flag = rng.choice(["--repeats", "--repeat-top"])
            argv = search_argv(d) + [flag, huge if flag == "--repeats" else "-" + huge]
            argv[argv.index("synflow")] = "train"
            names = flag
        elif kind == "train-sram-budget":
            value = rng.choice(["1e999", "inf", "nan", "-inf", huge + "e10"])
            argv, names = search_argv(d) + ["--train-sram-budget", value], "--train-sram-budget"
        elif kind == "space-yaml":
            path, names = _space_with(d, rng, rng.choice(["1e999", ".inf", "-.inf", ".nan", huge, 2 ** 80]))
            argv = search_argv(d, space=path)
        elif kind == "profile-yaml":
            folder = copy_profile(d)
            names = rng.choice(["sram_kb", "flash_kb", "clock_mhz", "reserved_sram_kb"])
            edit_profile(folder, **{names: rng.choice(["1e999", ".inf", huge, str(2 ** 80), "-1e999"])})
            argv = search_argv(d, device=folder)
        elif kind == "lut-macs":
            folder = copy_profile(d)
            lut = folder / "lut.csv"
            lines = lut.read_text().splitlines()
            row = rng.randrange(1, len(lines))
            cells = lines[row].split(",")
            column = rng.choice([3, 4])  # macs, params
            cells[column] = huge
            lines[row] = ",".join(cells)
            lut.write_text("\n".join(lines) + "\n")
            argv, names = search_argv(d, device=folder), str(lut)
        elif kind == "measurements-ms":
            csv = _measurements(d, rng.choice(["1e999", "inf", "nan", "-1e999", huge, "1e-400"]))
            argv, names = ["calibrate", str(copy_profile(d)), "--measurements", str(csv)], str(csv)
        elif kind == "calibrate-strength":
            csv = _measurements(d, "4.5")
            argv = ["calibrate", str(copy_profile(d)), "--measurements", str(csv), "--strength",
                    rng.choice(["1e400", "nan", "-inf", "-1"])]
            names = "--strength"
        elif kind == "kit-seed":
            argv = ["calibration-kit", "stm32f746", "--out", str(d / "kit"), "--no-files", "--seed",
                    rng.choice([huge, "-" + huge])]
            names = "--seed"
        elif kind == "trial-number":
            command = rng.choice(["export", "train-cost", "pareto-like"])
            if command == "export":
                argv = _export_argv(d, db)
                argv[argv.index("--trial") + 1] = huge
            elif command == "train-cost":
                argv = _study_argv("train-cost", d, db) + ["--scheme", "bias:1", "--trial", huge]
            else:
                argv = _study_argv("train-cost", d, db) + ["--scheme", "bias:1", "--trial", "-" + huge]
            names = "--trial"
        elif kind == "export-epochs":
            argv, names = _export_argv(d, db, "--epochs", rng.choice([huge, "-" + huge])), "--epochs"
        elif kind == "train-cost-batch":
            argv = _study_argv("train-cost", d, db) + ["--scheme", "bias:1", "--arith", "fp32", "--batch", huge]
            names = "--batch"
        elif kind == "repeats-top":
            flag = rng.choice(["--top", "--repeats"])
            argv, names = _study_argv("repeats", d, db) + [flag, "-" + huge if flag == "--top" else huge], flag
        elif kind == "profile-limit":
            flag = rng.choice(["--limit", "--warmup", "--repeats"])
            argv = ["profile", "--out", str(d / "prof"), "--space", "sensor-imu", flag, rng.choice([huge, "-" + huge])]
            names = flag
        elif kind == "pareto-whatif":  # what-if limits after the search: past any device, negative, not finite
            flag = rng.choice(["--latency-budget", "--sram-kb", "--flash-kb", "--stage-bits"])
            value = f"b1={rng.choice([huge, '-' + huge])}" if flag == "--stage-bits" else \
                rng.choice([huge, "-" + huge, huge + "e10", "1e999", "nan", "-inf"])
            argv, names = _study_argv("pareto", d, db) + [flag, value], flag
        else:
            argv, names = _study_argv("worker", d, db) + ["--trials", rng.choice([huge, "-" + huge])], "--trials"
        cases.append(Case("numeric-extremes", kind, _joined(argv), names, str(d)))
    return cases


# ------------------------------------------------------------------------------------------ zero-size inputs

def gen_zero_size(workdir, rng, n, db):
    """Empty files for every flag that takes a file, empty folders for data, and empty strings for flags."""
    kinds = ["space-file", "profile-yaml", "lut-csv", "latency-model", "measurements", "tflite", "onnx", "study-db",
             "journal", "data-folder", "images-zero-bytes", "empty-zip-npz", "empty-flag", "blank-space-file",
             "weights", "class-folders-empty"]
    cases = []
    for i, d, kind in _each_case(workdir, "zero-size", kinds, n, rng):
        if kind in ("space-file", "blank-space-file"):
            path = d / "space.yaml"
            path.write_text("" if kind == "space-file" else rng.choice(["\n", "   \n\n", "# only a comment\n", "---\n",
                                                                         "...\n", "~\n"]))
            argv, names = search_argv(d, space=path), str(path)
        elif kind in ("profile-yaml", "lut-csv", "latency-model"):
            folder = copy_profile(d)
            path = folder / {"profile-yaml": "profile.yaml", "lut-csv": "lut.csv",
                             "latency-model": "latency_model.yaml"}[kind]
            path.write_bytes(b"")
            argv = ["model-lut", str(folder)] if kind == "latency-model" and rng.random() < 0.5 else \
                search_argv(d, device=folder)
            names = str(path)
        elif kind == "measurements":
            path = d / "measured.csv"
            path.write_bytes(rng.choice([b"", b"\n", b"model,ms,source\n"]))
            argv, names = ["calibrate", str(copy_profile(d)), "--measurements", str(path)], str(path)
        elif kind in ("tflite", "onnx"):
            path = d / f"model.{kind}"
            path.write_bytes(b"")
            argv, names = ["score", str(path), "--device", rng.choice(["stm32f746", "all", "rpi4"])], str(path)
        elif kind in ("study-db", "journal"):
            path = d / ("study.db" if kind == "study-db" else "study.log")
            path.write_bytes(b"")
            command = rng.choice(["pareto", "repeats", "export", "train-cost", "worker"])
            argv = [command, "--study", "hostile", "--storage", str(path)]
            argv += {"export": ["--out", str(d / "out")], "train-cost": ["--scheme", "bias:1"]}.get(command, [])
            names = "hostile"  # no study of that name in it
        elif kind == "data-folder":
            root = d / "images"
            root.mkdir()
            if rng.random() < 0.5:
                (root / "train").mkdir()
                (root / "test").mkdir()
            argv, names = search_argv(d, space="vision", data=root), str(root)
        elif kind in ("images-zero-bytes", "class-folders-empty"):
            root = d / "images"
            for split in ("train", "test"):
                for cls in ("a", "b"):
                    (root / split / cls).mkdir(parents=True)
                    if kind == "images-zero-bytes":
                        for j in range(rng.randint(1, 3)):
                            (root / split / cls / f"{j}.png").write_bytes(b"")
            argv, names = search_argv(d, space="vision", data=root), str(root)
        elif kind == "empty-zip-npz":
            path = d / "data.npz"
            with zipfile.ZipFile(path, "w"):
                pass
            argv, names = search_argv(d, data=path), str(path)
        elif kind == "weights":
            path = d / "weights.pt"
            path.write_bytes(b"")
            argv, names = _export_argv(d, db, "--weights", str(path)), str(path)
        else:
            argv, names = _empty_flag(d, rng, db)
        cases.append(Case("zero-size", kind, _joined(argv), names, str(d)))
    return cases


def _empty_flag(d: Path, rng, db: Path) -> tuple[list[str], str]:
    """One flag of one command given as an empty (or blank) string."""
    blank = rng.choice(["", " ", "\t"])
    options = [
        ("search", "--space"), ("search", "--device"), ("search", "--data"), ("search", "--storage"),
        ("search", "--study"), ("search", "--objectives"), ("search", "--train-scheme"), ("search", "--train-sram-budget"),
        ("export", "--format"), ("export", "--trial"), ("export", "--out"), ("export", "--device"),
        ("train-cost", "--scheme"), ("train-cost", "--trial"), ("train-cost", "--batch"), ("pareto", "--device"),
        ("score", "--device"), ("calibration-kit", "--out"), ("profile", "--out"), ("profile", "--name"),
    ]
    command, flag = rng.choice(options)
    if command == "search":
        argv = search_argv(d)
        if flag in argv:
            argv[argv.index(flag) + 1] = blank
        else:
            argv += [flag, blank]
    elif command == "export":
        argv = _export_argv(d, db)
        if flag in argv:
            argv[argv.index(flag) + 1] = blank
        else:
            argv += [flag, blank]
    elif command == "train-cost":
        argv = _study_argv("train-cost", d, db) + ["--scheme", "bias:1" if flag != "--scheme" else blank]
        argv += [] if flag == "--scheme" else [flag, blank]
    elif command == "pareto":
        argv = _study_argv("pareto", d, db) + [flag, blank]
    elif command == "score":
        onnx = d / "model.onnx"
        onnx.write_bytes(hc._tiny_onnx())
        argv = ["score", str(onnx), flag, blank]
    elif command == "calibration-kit":
        argv = ["calibration-kit", "stm32f746", "--no-files", flag, blank]
    else:
        argv = ["profile", flag, blank, "--space", "sensor-imu", "--limit", "1"]
    return argv, flag


# ------------------------------------------------------------------------------ foreign content, valid format

def _foreign_sqlite(path: Path, rng) -> None:
    """A valid SQLite database of another application (no Optuna tables)."""
    with sqlite3.connect(path) as con:
        table = rng.choice(["users", "studies", "trials", "notes"])  # Optuna's own table names included
        con.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT, value REAL)")
        con.executemany(f"INSERT INTO {table} (name, value) VALUES (?, ?)",
                        [(f"row{j}", rng.random()) for j in range(rng.randint(1, 50))])
    con.close()


def _other_schema(path: Path, db: Path, rng) -> None:
    """A copy of an Optuna storage whose schema version is another one (older, newer, or nonsense)."""
    _study_copy(path.parent, db).rename(path)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE alembic_version SET version_num = ?",
                    (rng.choice(["v0.9.0.a", "v9.9.9.z", "v1.2.0.a", "not-a-version"]),))
    con.close()


def _digest(path: Path) -> tuple[str, str]:
    import hashlib

    return str(path), hashlib.sha256(path.read_bytes()).hexdigest()


def _foreign_model(path: Path, rng, workdir: Path) -> str:
    """A well-formed file of another format under a model suffix; what it holds."""
    import numpy as np

    what = rng.choice(["zip", "npz", "sqlite", "png", "json", "hdf5", "onnx" if path.suffix != ".onnx" else "tflite"])
    if what == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("model.txt", "hello")
    elif what == "npz":
        with path.open("wb") as fh:
            np.savez(fh, w=np.zeros((8, 3, 3), np.float32))
    elif what == "sqlite":
        _foreign_sqlite(path, rng)
    elif what == "png":
        path.write_bytes(hc.png_bytes(8, 8))
    elif what == "json":
        path.write_text(json.dumps({"model": "conv", "layers": [1, 2, 3]}))
    elif what == "onnx":
        path.write_bytes(hc._tiny_onnx())
    elif what == "tflite":
        path.write_bytes(hc._tiny_tflite(workdir))
    else:  # HDF5's signature and superblock start, as a Keras .h5 begins
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes([0, 0, 0, 0, 0, 8, 8, 0]) + bytes(rng.randint(32, 512)))
    return what


def _unsupported_onnx(rng) -> bytes:
    """A valid ONNX model made of one operator no device LUT knows."""
    from onnx import TensorProto, helper

    op, attrs = rng.choice([("Einsum", {"equation": "bchw->bchw"}), ("Sin", {}), ("HardSwish", {}), ("Erf", {}),
                            ("Softsign", {}), ("Round", {})])
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], **attrs)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()



def _storage_argv(command: str, d: Path, path: Path) -> list[str]:
    """``command`` pointed at the storage file ``path`` (a search writes its study there; the others read one)."""
    if command == "search":
        argv = search_argv(d)
        argv[argv.index("--storage") + 1] = f"sqlite:///{path}"
        return argv
    argv = [command, "--study", "hostile", "--storage", f"sqlite:///{path}"]
    return argv + {"export": ["--out", str(d / "out")], "train-cost": ["--scheme", "bias:1"]}.get(command, [])

def gen_foreign_content(workdir, rng, n, db):
    """Well-formed files of the right storage format holding something else: a SQLite database of another
    application or of another Optuna schema, a ZIP/npz/HDF5/SQLite file where a model is expected, YAML that is
    a list or a scalar, an ONNX model of operators no device runs, an .npz of other arrays."""
    kinds = ["sqlite-foreign", "optuna-other-schema", "model-other-format", "onnx-unsupported", "yaml-not-mapping",
             "npz-other-keys", "weights-other-format", "journal-foreign", "optuna-other-app", "measurements-other"]
    cases = []
    for i, d, kind in _each_case(workdir, "foreign-content", kinds, n, rng):
        untouched = ()
        if kind in ("sqlite-foreign", "optuna-other-schema"):
            path = d / "other.db"
            _foreign_sqlite(path, rng) if kind == "sqlite-foreign" else _other_schema(path, db, rng)
            argv = _storage_argv(rng.choice(["search", "pareto", "export", "worker", "repeats", "train-cost"]), d, path)
            names, untouched = str(path), (_digest(path),)
        elif kind == "model-other-format":
            path = d / f"model.{rng.choice(['tflite', 'onnx'])}"
            kind = f"{path.suffix[1:]} holding {_foreign_model(path, rng, workdir)}"
            argv, names = ["score", str(path), "--device", "stm32f746"], str(path)
        elif kind == "onnx-unsupported":
            path = d / "model.onnx"
            path.write_bytes(_unsupported_onnx(rng))
            argv, names = ["score", str(path), "--device", rng.choice(["stm32f746", "rpi4"])], str(path)
        elif kind == "yaml-not-mapping":
            text = rng.choice(["- a\n- b\n", "42\n", "just a string\n", "[1, 2, 3]\n", "true\n", "!!binary aGVsbG8=\n"])
            target = rng.choice(["space", "profile", "latency_model"])
            if target == "space":
                path = d / "space.yaml"
                path.write_text(text)
                argv = search_argv(d, space=path)
            else:
                folder = copy_profile(d)
                path = folder / ("profile.yaml" if target == "profile" else "latency_model.yaml")
                path.write_text(text)
                argv = search_argv(d, device=folder) if target == "profile" else ["model-lut", str(folder)]
            names = str(path)
        elif kind == "npz-other-keys":
            import numpy as np

            path = d / "data.npz"
            with path.open("wb") as fh:
                np.savez(fh, **{rng.choice(["arr_0", "images", "X", "train"]): np.zeros((4, 6, 100), np.float32)})
            argv, names = search_argv(d, data=path), str(path)
        elif kind == "weights-other-format":
            path = d / "weights.pt"
            _foreign_model(path, rng, workdir)
            argv, names = _export_argv(d, db, "--weights", str(path)), str(path)
        elif kind == "journal-foreign":
            path = d / "study.log"
            lines = [json.dumps(rng.choice([{"event": "login", "user": "x"}, [1, 2, 3], "text", {"op_code": 99},
                                            {"op_code": 0, "worker_id": "w"}])) for _ in range(rng.randint(1, 20))]
            path.write_text("\n".join(lines) + "\n")
            command = rng.choice(["pareto", "search", "worker"])
            argv = search_argv(d) if command == "search" else [command, "--study", "hostile", "--storage", str(path)]
            if command == "search":
                argv[argv.index("--storage") + 1] = str(path)
            names, untouched = str(path), (_digest(path),)
        elif kind == "optuna-other-app":
            import optuna

            path = d / "other-app.db"
            study = optuna.create_study(study_name="hostile", storage=f"sqlite:///{path}",
                                        directions=rng.choice([["minimize"], ["maximize", "minimize", "minimize"]]))
            for _ in range(rng.randint(1, 4)):
                trial = study.ask()
                x = trial.suggest_float("x", 0, 1)
                study.tell(trial, [x] * len(study.directions))
            if rng.random() < 0.5:
                study.set_user_attr("settings", rng.choice([[1, 2], "text", {"space": 3}]))
            del study
            argv = _storage_argv(rng.choice(["pareto", "repeats", "export", "train-cost", "worker", "search"]), d, path)
            names = "hostile"
        else:
            path = d / "measured.csv"
            path.write_text(rng.choice(["name,age\nann,3\nbob,4\n", "a;b;c\n1;2;3\n", "model,ms,source\n1,2\n"]))
            argv, names = ["calibrate", str(copy_profile(d)), "--measurements", str(path)], str(path)
        cases.append(Case("foreign-content", kind, _joined(argv), names, str(d), untouched=untouched))
    return cases


# ------------------------------------------------------------------------------ resource flags beyond the machine

def gen_resource_flags(workdir, rng, n, db):
    """Flags asking for far more than the machine has: workers many times the cores, a million repeats, 10**12
    trials, huge warm-up counts, a space whose choices make networks of 10**7 channels."""
    kinds = ["workers", "trials-with-budget", "repeats-command", "search-repeats", "profile-warmup", "quick-models",
             "space-channels", "space-length", "population", "train-cost-batch", "export-epochs", "space-largest"]
    cases = []
    for i, d, kind in _each_case(workdir, "resource-flags", kinds, n, rng):
        big = rng.choice([10 ** 5, 10 ** 6, 10 ** 7, rng.randint(10 ** 4, 10 ** 9)])
        if kind == "workers":
            value = rng.choice([100_000, CORES * rng.randint(64, 4096), 10 ** 6])
            argv, names = search_argv(d) + ["--workers", str(value)], "--workers"
        elif kind == "trials-with-budget":
            argv = search_argv(d) + ["--trials", str(rng.choice([10 ** 12, 10 ** 9, 2 ** 40])), "--latency-budget",
                                     str(rng.choice([1, 5, 50]))]
            names = "--trials"
        elif kind == "repeats-command":
            argv, names = _study_argv("repeats", d, db) + ["--repeats", str(big), "--top", str(big)], "--repeats"
        elif kind == "search-repeats":
            argv = search_argv(d) + ["--repeats", str(big)]
            argv[argv.index("synflow")] = "train"
            names = "--repeats"
        elif kind == "profile-warmup":
            flag = rng.choice(["--warmup", "--repeats"])
            argv, names = ["profile", "--out", str(d / "prof"), "--space", "sensor-imu", flag, str(big * 1000)], flag
        elif kind == "quick-models":
            argv = ["calibrate", str(copy_profile(d)), "--quick", "--models-per-space", str(big)]
            names = "--models-per-space"
        elif kind in ("space-channels", "space-length"):
            import yaml

            doc = yaml.safe_load((SPACES / "sensor-imu.yaml").read_text())
            if kind == "space-channels":
                names = rng.choice(["width", "channels"])
                if names == "width":
                    doc["blocks"]["width"] = [rng.choice([10 ** 6, 10 ** 7, 3 * 10 ** 7])]
                else:
                    doc["input"]["channels"] = rng.choice([10 ** 6, 10 ** 7])
            else:
                names = "length"
                doc["input"]["length"] = rng.choice([10 ** 8, 10 ** 9, 10 ** 10])
            path = d / "space.yaml"
            path.write_text(yaml.safe_dump(doc))
            argv = search_argv(d, space=path)
        elif kind == "space-largest":  # every choice within its range; together billions of parameters
            import yaml

            doc = yaml.safe_load((SPACES / "sensor-imu.yaml").read_text())
            doc["blocks"].update(count=[rng.randint(6, 16)], width=[rng.choice([1536, 2048])],
                                 kernel=[rng.choice([21, 25, 31])])
            path = d / "space.yaml"
            path.write_text(yaml.safe_dump(doc))
            argv, names = search_argv(d, space=path, device=rng.choice(["rpi4", "host-cpu"])), str(path)
        elif kind == "population":
            argv = search_argv(d) + ["--population", str(big * 100), "--sampler", rng.choice(["nsga2", "tpe"])]
            names = "--population"
        elif kind == "train-cost-batch":
            argv = _study_argv("train-cost", d, db) + ["--scheme", "bias:1", "--arith", "fp32", "--batch",
                                                       str(big * 10 ** 6)]
            names = "--batch"
        else:
            argv, names = _export_argv(d, db, "--epochs", str(big * 1000)), "--epochs"
        cases.append(Case("resource-flags", kind, _joined(argv), names, str(d)))
    return cases


GENERATORS = {  # all take the study db as a fourth argument
    "numeric-extremes": gen_numeric_extremes,
    "zero-size": gen_zero_size,
    "foreign-content": gen_foreign_content,
    "resource-flags": gen_resource_flags,
}
