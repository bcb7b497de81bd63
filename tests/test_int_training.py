"""The arithmetic engine of on-device adaptation (issue 23, item 3): the int8 graph is the deployed model's
quantised inference, QAS makes an integer step equal a float step, schemes freeze what they must, Octo's errors
are int8, and runs are reproducible."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from workbench._infra.errors import WorkbenchError
from workbench.model import int_training as it
from workbench.model.arch import Architecture
from workbench.model.builder import build_model
from workbench.model.quant import calibrate, deployable_model, fake_quant_weight, quantize_model
from workbench.model.space import load_space
from workbench.model.train_graph import weight_layers
from workbench.model.update_schemes import parse_scheme
from workbench.model.update_torch import model_layers

INT8 = {"precision": "int8", "quant_mode": "ptq"}
# conv1d 3->8 (k3, T=16) + ReLU6, maxpool 2, conv1d 8->8 (k3) + ReLU6, gap, fc 8->4: every weight layer reads its
# op's input, so its activation quantisation points are exactly quant.py's
NET = Architecture.create("t", "cnn1d", (3, 16), 4, {"blocks": 2, "pool_type": "max", "b1_width": 8, "b1_kernel": 3,
                                                     "b1_pool": 2, "b2_width": 8, "b2_kernel": 3, "b2_pool": 1, **INT8})


def _trained_like(arch, seed=0):
    """A built model with non-trivial BatchNorm statistics (so folding matters), eval mode."""
    torch.manual_seed(seed)
    model = build_model(arch)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
    return model.eval()


@pytest.fixture(scope="module")
def data():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 3, 16, generator=gen)
    y = torch.randint(0, 4, (64,), generator=gen)
    return x, y


@pytest.fixture(scope="module")
def graphs(data):
    model = _trained_like(NET)
    return model, {a: it.deployed_graph(model, NET, data[0], a) for a in ("fp32", "int8")}


def test_rounding_table_names_every_tensor():
    assert set(it.ARITHMETICS.names()) == {"fp32", "int8", "int8-qas", "int8-octo"}
    for a in it.ARITHMETICS.entries():
        assert [t for t, _ in a.rounding] == list(it.TENSORS), a.name
        assert all(text for _, text in a.rounding)
    assert [a.name for a in it.ARITHMETICS.where(integer=True)] == ["int8", "int8-qas", "int8-octo"]
    with pytest.raises(WorkbenchError, match="--arith"):
        it.ARITHMETICS.get("int4")


def test_int8_graph_is_the_deployed_quantised_inference(graphs, data):
    model, g = graphs
    x = data[0]
    reference = quantize_model(deployable_model(model, NET), NET, "ptq")
    calibrate(reference, [x])
    with torch.no_grad():
        ours, ref = g["int8"](x), reference(x)
    step = g["int8"].act_quant[-1].qparams()[0]
    # the same output grid; only the int32 rounding of the biases may move a value by one step
    assert float((ours - ref).abs().max()) <= step * 1.01
    assert float((ours - ref).abs().lt(step / 2).float().mean()) > 0.95
    folded = deployable_model(model, NET)
    for layer, (ref_layer, _) in zip(it.int_layers(g["int8"]), model_layers(folded)):
        codes = layer.layer.weight.detach()
        assert torch.equal(codes, codes.round()) and float(codes.abs().max()) <= 127
        torch.testing.assert_close(layer.dequantised()[0], fake_quant_weight(ref_layer.weight, 8))
    assert model.training is False and not it.int_layers(model)  # the input model is untouched


def test_scheme_layer_count_matches_the_architecture_on_every_family():
    archs = [NET]
    for space in ("vision", "sensor-imu", "audio-kws", "mlperf-ic", "mlperf-ad"):
        archs += load_space(space).random_archs(2, seed=3)
    assert {a.family for a in archs} >= {"mbconv", "cnn1d", "dscnn", "resnet", "mlp"}
    for arch in archs:
        x = torch.randn(4, *arch.input_shape)
        graph = it.deployed_graph(build_model(arch).eval(), arch, x, "int8")
        assert it.n_layers(graph) == len(weight_layers(arch)) == len(it.int_layers(graph)), arch.family


def _dequantised_gradient(graph, x, y):
    """dL/dw of the last layer's dequantised weight, in the integer graph itself."""
    g = it.copy.deepcopy(graph)
    last = it.int_layers(g)[-1]
    last.layer.weight.requires_grad_(True)
    nn.functional.cross_entropy(g(x), y).backward()
    return last.layer.weight.grad / last._shape(last.w_scale)  # dL/dcode = s_w dL/dw


def test_qas_makes_one_integer_step_equal_one_float_step(graphs, data):
    x, y = data
    graph = graphs[1]["int8"]
    updates = parse_scheme("classifier").resolve(it.n_layers(graph))
    lr = 1e-3
    expected = -lr * _dequantised_gradient(graph, x, y)
    before = it.int_layers(graph)[-1].dequantised()[0].detach()
    moved = {}
    for arith in ("int8-qas", "int8"):
        tuned = it.fine_tune(graph, updates, x, y, arith=arith, seed=0, steps=1, batch=len(x), lr=lr)
        last = it.int_layers(tuned)[-1]
        moved[arith] = last.layer.weight * last._shape(last.w_scale) - it.int_layers(graph)[-1].layer.weight * \
            last._shape(last.w_scale)
    codes = it.int_layers(graph)[-1].layer.weight
    inside = codes.abs() < 127  # a code at the grid's end saturates (tested below), the others move freely
    torch.testing.assert_close(moved["int8-qas"][inside], expected[inside], rtol=1e-3, atol=1e-7)
    scale = it.int_layers(graph)[-1]._shape(it.int_layers(graph)[-1].w_scale).expand_as(codes)
    torch.testing.assert_close(moved["int8"][inside], (expected * scale ** 2)[inside], rtol=1e-3, atol=1e-9)
    assert float(moved["int8"].abs().sum()) < 0.01 * float(moved["int8-qas"].abs().sum())
    outward = (~inside) & (expected.sign() == codes.sign())
    assert outward.any() and float(moved["int8-qas"][outward].abs().max()) == 0.0
    assert before.abs().sum() > 0


@pytest.mark.parametrize("arith", ["fp32", "int8-qas", "int8-octo"])
def test_frozen_layers_and_masked_channels_stay_bit_identical(graphs, data, arith):
    x, y = data
    graph = graphs[1]["fp32" if arith == "fp32" else "int8"]
    updates = parse_scheme("sparse:bias=1,w=2@0.5").resolve(it.n_layers(graph))
    tuned = it.fine_tune(graph, updates, x, y, arith=arith, seed=0, steps=5, lr=0.05)
    (a1, _), (a2, _), (a3, _) = model_layers(graph)
    (b1, _), (b2, _), (b3, _) = model_layers(tuned)
    assert torch.equal(a1.weight, b1.weight) and torch.equal(a1.bias, b1.bias)  # layer 1 frozen
    assert torch.equal(a3.weight, b3.weight) and not torch.equal(a3.bias, b3.bias)  # bias only
    assert torch.equal(a2.weight[:, 4:], b2.weight[:, 4:])  # input channels 4..7 left out at ratio 0.5
    assert not torch.equal(a2.weight[:, :4], b2.weight[:, :4])


def test_same_seed_same_weights_other_seed_other_weights(graphs, data):
    x, y = data
    graph = graphs[1]["int8"]
    updates = parse_scheme("last:2").resolve(it.n_layers(graph))
    state = [dict(it.fine_tune(graph, updates, x, y, arith="int8-octo", seed=s, steps=4, batch=8).state_dict())
             for s in (0, 0, 1)]
    assert all(torch.equal(state[0][k], state[1][k]) for k in state[0])
    assert any(not torch.equal(state[0][k], state[2][k]) for k in state[0])
    rng = torch.get_rng_state()
    it.fine_tune(graph, updates, x, y, arith="int8-qas", seed=3, steps=2)
    assert torch.equal(rng, torch.get_rng_state())


def test_octo_errors_are_on_an_int8_grid(graphs, data):
    x, y = data
    graph = it.copy.deepcopy(graphs[1]["int8"])
    seen = []
    for layer in it.int_layers(graph):
        layer.layer.weight.requires_grad_(True)
        layer.error.active, layer.error.generator = True, torch.Generator().manual_seed(0)
        layer.error.register_full_backward_hook(lambda m, grad_in, grad_out: seen.append((grad_in[0], m.last_step)))
    nn.functional.cross_entropy(graph(x), y).backward()
    assert len(seen) == 3
    for grad, step in seen:
        codes = grad / step
        torch.testing.assert_close(codes, codes.round(), rtol=0, atol=1e-3)
        assert float(codes.abs().max()) <= 127 + 1e-3 and float(codes.abs().max()) > 10


def test_range_clipping_picks_the_smaller_error():
    # a Gaussian bulk and one outlier: clipping at a fraction of max|g| costs the outlier less than it saves the
    # bulk, so the MSE-best range is below the full range
    g = torch.cat([torch.randn(100_000, generator=torch.Generator().manual_seed(0)), torch.tensor([8.0])])
    q, step = it.quantise_int8(g, None)
    full = torch.round(g / (8 / 127)) * (8 / 127)
    assert step < 8 / 127
    assert float((q - g).square().sum()) < float((full - g).square().sum())
    assert float((q / step - (q / step).round()).abs().max()) < 1e-3
    same = [it.quantise_int8(g, torch.Generator().manual_seed(5))[0] for _ in range(2)]
    assert torch.equal(*same)
    assert abs(float(same[0].mean() - g.clamp(-127 * step, 127 * step).mean())) < 1e-3  # unbiased rounding


def test_fine_tune_refuses_a_graph_of_the_other_kind(graphs, data):
    x, y = data
    updates = parse_scheme("bias:1").resolve(3)
    with pytest.raises(WorkbenchError, match="--arith int8-qas"):
        it.fine_tune(graphs[1]["fp32"], updates, x, y, arith="int8-qas", seed=0, steps=1)


def test_a_4bit_stage_keeps_its_codes_in_minus8_to_7(data):
    x, y = data
    arch = Architecture.create("t", "cnn1d", (3, 16), 4, {**NET.choice, "b1_wbits": 4})
    graph = it.deployed_graph(_trained_like(arch), arch, x, "int8")
    first = it.int_layers(graph)[0]
    assert first.bits == 4 and it.int_layers(graph)[1].bits == 8
    tuned = it.fine_tune(graph, parse_scheme("full").resolve(3), x, y, arith="int8-qas", seed=0, steps=20, lr=1.0)
    for layer in (first, it.int_layers(tuned)[0]):
        codes = torch.clamp(layer.layer.weight.detach().round(), layer.qmin, layer.qmax)
        assert int(codes.min()) >= -8 and int(codes.max()) <= 7 and len(torch.unique(codes)) <= 16
        assert float(layer.layer.weight.detach().min()) >= -8 and float(layer.layer.weight.detach().max()) <= 7
    assert not torch.equal(first.layer.weight, it.int_layers(tuned)[0].layer.weight)
