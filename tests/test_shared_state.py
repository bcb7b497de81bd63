"""Shared state with an owner: profile loading that notices edits, bounded memos owned by the objects that
fill them, process-wide settings that threads can share, and the notices channel."""
from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import warnings

import pytest
import torch

from workbench.hardware import cost, profiles
from workbench._infra import notices, process_settings
from workbench._infra.memo import BoundedMemo, HotMemo, cached_attribute
from workbench.model.space import load_space


@pytest.fixture
def f746_copy(tmp_path):
    """A copy of stm32f746 whose files are older than the racy window (copytree keeps their times)."""
    folder = tmp_path / "dev"
    shutil.copytree(profiles.PROFILES_DIR / "stm32f746", folder)
    return folder


def _rewrite(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _age(path, seconds_since_epoch: int):
    """Date a file back, out of the racy window (as an edit made long ago would be)."""
    os.utime(path, ns=(seconds_since_epoch * 10**9, seconds_since_epoch * 10**9))


def test_profile_is_reused_until_its_files_change(f746_copy):
    first = profiles.load_profile(f746_copy)
    assert profiles.load_profile(f746_copy / "profile.yaml") is first  # same file by another path: reused

    _rewrite(f746_copy / "profile.yaml", "clock_mhz: 216", "clock_mhz: 200")  # same size
    _age(f746_copy / "profile.yaml", 1_600_000_000)
    edited = profiles.load_profile(f746_copy)
    assert edited is not first and edited.clock_mhz == 200 and first.clock_mhz == 216
    assert profiles.load_profile(f746_copy) is edited  # the new files are stamped and reused

    key = next(iter(edited.latency.lut.entries))
    lut = f746_copy / "lut.csv"
    lines = lut.read_text().splitlines(keepends=True)
    row = next(i for i, line in enumerate(lines) if line.startswith(key + ","))
    fields = lines[row].split(",")
    fields[5] = "123.5"  # mean_ms
    lines[row] = ",".join(fields)
    lut.write_text("".join(lines))
    _age(lut, 1_600_000_000)
    reloaded = profiles.load_profile(f746_copy)
    assert reloaded.latency.lut.entries[key].mean_ms == 123.5

    model = f746_copy / "latency_model.yaml"  # what a modeled profile computes ops missing from its LUT with
    assert reloaded.latency.model is not None and profiles.load_profile(f746_copy) is reloaded
    model.write_text(model.read_text() + "\n")
    _age(model, 1_600_000_000)
    assert profiles.load_profile(f746_copy) is not reloaded


def test_a_profile_edited_within_the_racy_window_is_read_again(f746_copy):
    """A file written just now may change again without its size or time changing: not trusted yet."""
    _rewrite(f746_copy / "profile.yaml", "clock_mhz: 216", "clock_mhz: 200")
    first = profiles.load_profile(f746_copy)
    assert profiles.load_profile(f746_copy) is not first


def test_profile_cache_is_bounded(tmp_path, monkeypatch):
    cache = profiles.ProfileCache(maxsize=2)
    monkeypatch.setattr(profiles, "_CACHE", cache)
    source = profiles.PROFILES_DIR / "rpi4"
    for i in range(3):
        shutil.copytree(source, tmp_path / f"p{i}")
        profiles.load_profile(tmp_path / f"p{i}", notify=False)
    assert len(cache) == 2


def test_bounded_memo_drops_the_least_recently_used():
    memo = BoundedMemo(2)
    assert memo.get("a", lambda: 1) == 1 and memo.get("b", lambda: 2) == 2
    assert memo.get("a", lambda: 99) == 1  # a hit: "a" is now the most recent
    memo.get("c", lambda: 3)
    assert len(memo) == 2 and memo.peek("b") is None and memo.peek("a") == 1
    with pytest.raises(ValueError):
        BoundedMemo(0)


def test_hot_memo_drops_the_older_half_when_full():
    memo = HotMemo(4)
    for key in "abcd":
        memo.put(key, key.upper())
    assert memo.lookup("a") == "A" and len(memo) == 4
    memo.put("b", "B2")  # a key already held: nothing dropped
    assert len(memo) == 4 and memo.lookup("b") == "B2"
    memo.put("e", "E")  # full: the two oldest inserted go first, whatever was read since
    assert [memo.lookup(k) for k in "abcde"] == [None, None, "C", "D", "E"]
    with pytest.raises(ValueError):
        HotMemo(1)


def test_cached_attribute_computes_once_per_instance():
    calls = []

    class Thing:
        @cached_attribute
        def value(self):
            calls.append(self)
            return len(calls)

    first, second = Thing(), Thing()
    assert (first.value, first.value, second.value) == (1, 1, 2) and len(calls) == 2
    assert Thing.value.name == "value"


def test_estimator_owns_its_memos_and_a_reloaded_profile_gets_a_new_one(f746_copy):
    arch = load_space("vision").random_archs(1, seed=0, precisions=["int8"])[0]
    profile = profiles.load_profile(f746_copy)
    estimator = cost.estimator_for(profile)
    assert cost.estimator_for(profile) is estimator
    before = cost.estimate(arch, profile)
    assert len(estimator._segments) == len(set(arch.segments)) and len(estimator._estimates) == 1
    assert before == cost.CostEstimator(profile).estimate(arch)  # a fresh estimator agrees with the memoised one
    assert cost.estimate(arch, profile) is before  # scored again: the remembered estimate

    _rewrite(f746_copy / "profile.yaml", "clock_mhz: 216", "clock_mhz: 200")
    scaled = 2.0
    lut = f746_copy / "lut.csv"
    rows = lut.read_text().splitlines()
    out = [rows[0]]
    for line in rows[1:]:
        f = line.split(",")
        f[5] = repr(float(f[5]) * scaled)
        out.append(",".join(f))
    lut.write_text("\n".join(out) + "\n")
    reloaded = profiles.load_profile(f746_copy)
    after = cost.estimate(arch, reloaded)
    assert cost.estimator_for(reloaded) is not estimator
    ops_ms = before.latency_ms - profile.per_inference_ms
    assert after.latency_ms == pytest.approx(reloaded.per_inference_ms + scaled * ops_ms, rel=1e-9)


def test_every_memo_is_bounded():
    """The memos issue 14 names: lru_caches with a maxsize, owned memos with a bound."""
    from workbench.model import data
    from workbench.hardware import memory, memory_pieces
    from workbench.model import tflite_graph
    from workbench.model.families import cnn1d, common, dscnn, mbconv, mlp, resnet

    cached = [common.conv_segment, common.classifier_segment, mbconv._stage, mlp._layer, mlp._output, mlp._flatten,
              dscnn._block, cnn1d._block, resnet._stage, tflite_graph._fragment, data._builtin]
    assert [f.__name__ for f in cached if f.cache_info().maxsize is None] == []
    assert memory.HOST_TFLM.memo.maxsize == memory.MEMO_SIZE
    plan = memory_pieces.Plan([(32, 0, 1), (16, 1, 1)], 0, 1)  # a segment's plans per boundary offset
    for offset in range(0, 32 * memory_pieces.PLAN_MEMO_SIZE, 16):
        plan.peak(offset, None)
    assert 0 < len(plan._peaks) <= memory_pieces.PLAN_MEMO_SIZE
    left = memory_pieces.Plan([(32, 0, 1), (48, 1, 1)], None, 1)  # the boundary offsets a plan remembers
    for n in range(memory_pieces.JOIN_MEMO_SIZE + 3):
        right = memory_pieces.Plan([(48, 0, 1), (16 * (n + 1), 1, 1)], 0, 1)
        memory_pieces.boundary_offset([left, right], 0, 48, [None])
    assert 0 < len(left._joins) <= memory_pieces.JOIN_MEMO_SIZE
    estimator = cost.CostEstimator(profiles.load_profile("rpi4"))
    assert (estimator._segments.maxsize, estimator._estimates.maxsize) == (cost.SEGMENT_MEMO_SIZE,
                                                                             cost.ARCH_MEMO_SIZE)


# ---------------------------------------------------------------- process-wide settings

def test_torch_threads_restores_and_nests():
    before = torch.get_num_threads()
    with process_settings.torch_threads(1):
        assert torch.get_num_threads() == 1
        with process_settings.torch_threads(2):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with process_settings.torch_threads(None):
        assert torch.get_num_threads() == before


def test_overlapping_threads_share_a_setting_and_the_last_one_restores():
    """Thread A enters, B enters, A leaves first: the setting holds until B leaves, then comes back."""
    logger = logging.getLogger("workbench-test-shared")
    logger.setLevel(logging.INFO)
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def thread_a():
        with process_settings.logger_levels({logger.name: logging.ERROR}):
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def thread_b():
        a_in.wait(5)
        with process_settings.logger_levels({logger.name: logging.ERROR}):
            b_in.set()
            a_out.wait(5)
            seen["after A left"] = logger.level
        seen["after B left"] = logger.level

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"after A left": logging.ERROR, "after B left": logging.INFO}


def test_a_different_value_waits_for_the_other_threads():
    setting_log = []
    setting = process_settings.SharedSetting("test", lambda v: setting_log.append(("set", v)) or v,
                                             lambda undo: setting_log.append(("undo", undo)))
    held, release = threading.Event(), threading.Event()

    def holder():
        with setting.held(1):
            held.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    entered = threading.Event()

    def other():
        with setting.held(2):
            entered.set()

    u = threading.Thread(target=other)
    u.start()
    assert not entered.wait(0.2)  # 2 waits while another thread holds 1
    release.set()
    t.join(5)
    u.join(5)
    assert entered.is_set() and setting.holders == 0
    assert setting_log == [("set", 1), ("undo", 1), ("set", 2), ("undo", 2)]


def test_environment_is_set_inside_and_restored(monkeypatch):
    monkeypatch.delenv("WORKBENCH_TEST_VAR", raising=False)
    monkeypatch.setenv("WORKBENCH_TEST_KEPT", "old")
    with process_settings.environment({"WORKBENCH_TEST_VAR": "n", "WORKBENCH_TEST_KEPT": "new"}):
        assert os.environ["WORKBENCH_TEST_VAR"] == "n" and os.environ["WORKBENCH_TEST_KEPT"] == "new"
    assert "WORKBENCH_TEST_VAR" not in os.environ and os.environ["WORKBENCH_TEST_KEPT"] == "old"


def test_quiet_silences_fd2_stdout_and_warnings_but_not_notices(tmp_path, capfd):
    filters = warnings.filters[:]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with process_settings.quiet():
            os.write(2, b"from C++\n")
            print("from a converter")
            warnings.warn("converter chatter")
            notices.notify("still shown")
        os.write(2, b"after\n")
    out, err = capfd.readouterr()
    assert "from C++" not in err and "from a converter" not in out and "after" in err
    assert [str(w.message) for w in caught] == ["still shown"]
    assert warnings.filters == filters and sys.stdout is not None


# ---------------------------------------------------------------- notices

def test_notice_is_a_warning_without_listeners():
    with pytest.warns(notices.RetrainMismatch, match="differs"):
        notices.notify("retrained accuracy differs", notices.RetrainMismatch)
    with pytest.raises(TypeError):
        notices.notify("not a notice", UserWarning)


def test_listeners_get_their_own_threads_notices_only():
    mine, theirs = [], []

    def other_thread():
        with notices.listening(theirs.append):
            notices.notify("from the export thread")

    with notices.listening(mine.append), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = threading.Thread(target=other_thread)
        t.start()
        t.join(5)
        notices.notify("from the cell", notices.OtherMachineWarning)
    assert [str(n) for n in mine] == ["from the cell"] and isinstance(mine[0], notices.OtherMachineWarning)
    assert [str(n) for n in theirs] == ["from the export thread"]
    assert not caught  # listened to: not also a warning


def test_cli_prints_each_notice_as_one_line(capsys, monkeypatch):
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # restored after the test
    notices.print_on_one_line()
    notices.print_on_one_line()  # idempotent
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        notices.notify("device 'x' was measured elsewhere", notices.OtherMachineWarning)
        notices.notify("retrained accuracy 0.9 differs from the stored 0.95", notices.RetrainMismatch)
        warnings.warn("an ordinary warning", UserWarning)  # left to the previous display
    err = capsys.readouterr().err
    assert err.splitlines()[:2] == ["notice: device 'x' was measured elsewhere",
                                    "notice: retrained accuracy 0.9 differs from the stored 0.95"]
    assert "notice: an ordinary warning" not in err


def test_export_panel_shows_its_background_exports_notices(monkeypatch, tmp_path):
    """The export panel's thread listens: a retrain mismatch shows in the panel, not as a stray warning."""
    pytest.importorskip("ipywidgets")
    from types import SimpleNamespace

    from workbench.export import trial as export
    from workbench.widgets import export_panel

    def fake_export_trial(*args, **kwargs):
        notices.notify("trial 3: retrained accuracy 0.9000 differs from the search's", notices.RetrainMismatch)
        return "the result"

    monkeypatch.setattr(export, "export_trial", fake_export_trial)
    monkeypatch.setattr(export_panel, "result_html", lambda result: f"<p>{result}</p>")
    panel = export_panel.ExportPanel("study", "sqlite:///unused.db", out_dir=tmp_path)
    panel.record = SimpleNamespace(number=3, accuracy=0.95)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        panel.start()
        assert panel.wait(30) == "the result"
    assert panel.shown_notices == ["trial 3: retrained accuracy 0.9000 differs from the search's"]
    assert "notice: trial 3: retrained accuracy 0.9000" in panel.notices.value
    assert not [w for w in caught if issubclass(w.category, notices.WorkbenchNotice)]
