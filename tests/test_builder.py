"""Model builder: every shipped space builds, matches its op schedule and its deployed parameter count."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from workbench.model.arch import Architecture
from workbench.model.builder import build_model, build_op, check_shapes, deployed_params, op_output_shapes
from workbench._infra.errors import WorkbenchError
from workbench.model.ops import Op
from workbench.model.space import DataShape, load_space


@pytest.mark.parametrize("space", ["vision", "audio-kws", "sensor-imu"])
def test_space_archs_build_and_match_schedule(space):
    sp = load_space(space)
    for arch in sp.random_archs(6, seed=7):
        model = build_model(arch)
        out = model(torch.randn(3, *arch.input_shape))
        assert out.shape == (3, arch.classes)
        for op, shape in op_output_shapes(model):
            assert shape == tuple(op.out_shape), (op.key, shape)
        check_shapes(model)
        assert deployed_params(model) == arch.n_params
        assert [b.op for b in model.blocks] == list(arch.ops)


def test_archs_sampled_for_data_shapes():
    cases = [("vision", DataShape((3, 8, 8), 5)), ("audio-kws", DataShape((12, 29), 9)),
             ("sensor-imu", DataShape((3, 50), 2))]
    for space, data in cases:
        for arch in load_space(space).random_archs(3, seed=1, data=data):
            model = build_model(arch)
            check_shapes(model)
            assert model(torch.randn(2, *arch.input_shape)).shape == (2, data.classes)


def test_mbconv_structure():
    archs = load_space("vision").random_archs(10, seed=3)
    seen_skip = seen_noexpand = False
    for arch in archs:
        model = build_model(arch)
        for block in model.blocks:
            op = block.op
            if op.kind != "mbconv":
                continue
            convs = [m for m in block.body if isinstance(m, nn.Conv2d)]
            assert len(convs) == (2 if op.hidden == op.in_shape[0] else 3)
            dw = convs[-2]
            assert dw.groups == op.hidden and dw.stride == (op.stride, op.stride) and dw.kernel_size == (op.kernel,) * 2
            assert not isinstance(block.body[-1], nn.ReLU6)  # linear bottleneck
            assert block.skip == op.skip
            seen_skip |= op.skip
            seen_noexpand |= op.hidden == op.in_shape[0]
    assert seen_skip and seen_noexpand


def test_unknown_op_kind_is_a_workbench_error():
    with pytest.raises(WorkbenchError, match=r"op 4 has kind 'conv3d', which the model builder does not know "
                                             r"\(known: conv2d, conv1d, "):
        build_op(Op("conv3d", (1, 8, 8, 8), (1, 8, 8, 8)), 4)


def test_check_shapes_reports_mismatch():
    arch = load_space("sensor-imu").random_archs(1)[0]
    model = build_model(arch)
    model.blocks[0].body[0].padding = (0,)  # 'valid' instead of 'same'
    with pytest.raises(WorkbenchError, match="op 0 conv1d"):
        check_shapes(model)


@pytest.mark.parametrize("space", ["vision", "audio-kws", "sensor-imu"])
def test_arch_json_roundtrip_builds_same_model(space):
    """The architecture read back from JSON is equal and builds the same network: same parameter names
    and shapes, and with the same seed the same initial weights and the same outputs."""
    for arch in load_space(space).random_archs(3, seed=5):
        again = Architecture.from_json(arch.to_json())
        assert again == arch and again.to_json() == arch.to_json()
        torch.manual_seed(0)
        model = build_model(arch).eval()
        torch.manual_seed(0)
        rebuilt = build_model(again).eval()
        state, state_again = model.state_dict(), rebuilt.state_dict()
        assert [(k, tuple(v.shape)) for k, v in state.items()] == [(k, tuple(v.shape)) for k, v in state_again.items()]
        assert all(torch.equal(state[k], state_again[k]) for k in state)
        x = torch.randn(2, *arch.input_shape)
        with torch.no_grad():
            assert torch.equal(model(x), rebuilt(x))
        assert deployed_params(rebuilt) == arch.n_params
