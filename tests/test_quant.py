"""Fake quantisation: weight grids at 8/4 bits, STE gradients, activation observers and the policy."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from workbench.model.builder import build_model, deployed_params
from workbench.model.quant import (ActFakeQuant, WeightFakeQuant, act_quantizers, calibrate, fake_quant_weight, freeze,
                             is_quantized, quant_disabled, quantize_model, weight_codes, weight_quantizers)
from workbench.model.space import load_space


def _arch(space, precision, mode=None, seed=0):
    for arch in load_space(space).random_archs(200, seed=seed):
        if arch.precision == precision and (mode is None or arch.quant_mode == mode):
            return arch
    raise AssertionError("no such arch sampled")


def test_int4_weights_have_at_most_16_levels():
    w = torch.randn(8, 16, 3, 3)
    codes = weight_codes(w, 4)
    assert codes.min() >= -8 and codes.max() <= 7
    assert 8 < len(torch.unique(codes)) <= 16
    q = fake_quant_weight(w, 4)
    for c in range(8):
        assert 8 < len(torch.unique(q[c])) <= 16
    assert (q - w).abs().max() < w.abs().max() / 7  # within one step of the grid


def test_int8_weights_have_at_most_256_levels():
    w = torch.randn(4, 512)
    q = fake_quant_weight(w, 8)
    for c in range(4):
        levels = len(torch.unique(q[c]))
        assert 16 < levels <= 256
    assert len(torch.unique(weight_codes(w, 8))) <= 256
    torch.testing.assert_close(q, w, atol=float(w.abs().max()) / 127, rtol=0)


def test_weight_parametrisation_is_straight_through():
    conv = nn.Conv2d(3, 4, 3)
    latent = conv.weight
    parametrize.register_parametrization(conv, "weight", WeightFakeQuant(4))
    assert conv.parametrizations.weight.original is latent  # optimiser keeps its parameter
    x = torch.randn(2, 3, 5, 5)
    conv(x).sum().backward()
    # STE: the latent gradient equals the gradient w.r.t. the (quantised) weight used in forward
    w_q = conv.weight.detach().requires_grad_()
    nn.functional.conv2d(x, w_q, conv.bias).sum().backward()
    torch.testing.assert_close(latent.grad, w_q.grad)


def test_fp32_arch_is_left_alone():
    arch = _arch("vision", "fp32")
    model = quantize_model(build_model(arch), arch)
    assert not is_quantized(model)


def test_policy_bits_per_op():
    arch = _arch("sensor-imu", "int8")
    model = quantize_model(build_model(arch), arch)
    for block in model.blocks:
        for m in block.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                assert parametrize.is_parametrized(m, "weight")
                assert m.parametrizations.weight[0].bits == block.op.wbits
    assert len(act_quantizers(model)) == len(arch.ops) + 1  # after every op and on the input
    assert deployed_params(model) == arch.n_params
    assert {q.bits for q in weight_quantizers(model)} == {b.op.wbits for b in model.blocks if b.op.kind in ("conv1d", "linear")}


def test_ptq_calibration_then_frozen_int8_activations():
    torch.manual_seed(0)
    arch = _arch("sensor-imu", "int8", "ptq")
    model = quantize_model(build_model(arch), arch, "ptq")
    x = torch.randn(64, *arch.input_shape)
    calibrate(model, [x[:32], x[32:]])
    q = act_quantizers(model)
    assert all(a.observer is None and a.fake for a in q)
    lo, hi = float(q[0].min_val), float(q[0].max_val)
    assert lo == float(x.min()) and hi == float(x.max())  # min/max over all calibration batches
    model.eval()
    with torch.no_grad():
        out = model(x)
        assert len(torch.unique(out)) <= 256
        model.train()
        model(x * 10)  # frozen: training-mode forwards do not move the ranges
    assert float(q[0].max_val) == hi
    model.eval()
    with torch.no_grad():
        quantised = model(x)
        with quant_disabled(model):
            assert not torch.equal(model(x), quantised)  # the float path differs
        torch.testing.assert_close(model(x), quantised)  # and quantisation is restored after
    assert all(a.fake for a in q)


def test_qat_observers_track_ema_and_train():
    torch.manual_seed(0)
    arch = _arch("sensor-imu", "int8", "qat")
    model = quantize_model(build_model(arch), arch)
    q = model.input_quant
    assert isinstance(q, ActFakeQuant) and q.observer == "ema" and q.fake
    model.train()
    model(torch.randn(16, *arch.input_shape))
    first = float(q.max_val)
    model(torch.randn(16, *arch.input_shape) * 4)
    assert first < float(q.max_val) < 4 * first  # moved towards the new range, not jumped
    model.eval()
    before = float(q.max_val)
    model(torch.randn(16, *arch.input_shape) * 100)
    assert float(q.max_val) == before  # eval forwards never update observers
    model.zero_grad()
    out = model(torch.randn(4, *arch.input_shape))
    out.sum().backward()
    # gradients flow through every fake quantiser to the float latent weights (STE), finite and non-zero
    latent = [m.parametrizations.weight.original for m in model.modules() if parametrize.is_parametrized(m, "weight")]
    assert latent and len(latent) == len(weight_quantizers(model))
    for w in latent:
        assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0
    freeze(model)
    assert q.observer is None


def test_activation_quantiser_gradient_is_clipped_straight_through():
    """Inside the frozen range the gradient passes unchanged; outside it is zero (values are clamped)."""
    aq = ActFakeQuant()
    aq.min_val.fill_(-1.0)
    aq.max_val.fill_(1.0)
    aq.initialized.fill_(True)
    aq.observer, aq.fake = None, True
    x = torch.tensor([-3.0, -0.5, 0.0, 0.3, 0.99, 2.5], requires_grad=True)
    aq(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_act_fake_quant_grid_contains_zero():
    aq = ActFakeQuant()
    aq.observer, aq.fake = "minmax", True
    aq.train()
    x = torch.linspace(0.5, 6.0, 1000)
    y = aq(x)
    scale, zero = aq.qparams()
    assert len(torch.unique(y)) <= 256
    assert torch.all(torch.abs(y - x) <= scale / 2 + 1e-6)
    assert aq(torch.zeros(3)).abs().max() == 0


# ---------------------------------------------------------------- the deployed model

def _trained_quantised(space="vision", precision="int8"):
    torch.manual_seed(0)
    arch = _arch(space, precision, "qat")
    model = quantize_model(build_model(arch), arch)
    model.train()
    for _ in range(3):  # move BatchNorm statistics and the activation ranges off their defaults
        model(torch.randn(8, *arch.input_shape))
    freeze(model)
    return arch, model.eval()


def test_float_state_dict_keeps_latent_weights_under_plain_names():
    from workbench.model.quant import float_state_dict

    arch, model = _trained_quantised()
    state = float_state_dict(model)
    plain = build_model(arch).state_dict()
    assert set(state) == set(plain)  # no quantiser buffers, no parametrisation paths
    for name, m in model.named_modules():
        if parametrize.is_parametrized(m, "weight"):
            assert torch.equal(state[f"{name}.weight"], m.parametrizations.weight.original)  # float, not rounded
            assert not torch.equal(state[f"{name}.weight"], m.weight)


def test_deployable_model_equals_the_float_network_with_batchnorm_folded():
    from workbench.model.quant import deployable_model

    arch, model = _trained_quantised()
    deploy = deployable_model(model, arch)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, ActFakeQuant)) for m in deploy.modules())
    assert not any(parametrize.is_parametrized(m) for m in deploy.modules())
    assert is_quantized(model)  # the source keeps its quantisers
    x = torch.randn(4, *arch.input_shape)
    with torch.no_grad(), quant_disabled(model):
        torch.testing.assert_close(deploy(x), model(x), atol=1e-4, rtol=1e-4)


def test_fold_batchnorm_matches_conv_then_batchnorm():
    from workbench.model.quant import fold_batchnorm

    torch.manual_seed(1)
    conv = nn.Sequential(nn.Conv1d(3, 5, 3, padding=1), nn.BatchNorm1d(5), nn.ReLU6())
    linear = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6))
    for seq, x in ((conv, torch.randn(2, 3, 4)), (linear, torch.randn(2, 4))):
        bn = seq[1]
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        seq.eval()
        with torch.no_grad():
            before = seq(x)
            fold_batchnorm(seq)
            after = seq(x)
        assert isinstance(seq[1], nn.Identity)
        torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


def test_on_policy_grid_snaps_only_sub_32_bit_weights():
    from workbench.model.quant import deployable_model, layer_bits, on_policy_grid

    arch, model = _trained_quantised()
    deploy = deployable_model(model, arch)
    bits = layer_bits(deploy)
    assert set(bits.values()) == {op.wbits for op in arch.ops if op.spec.has_weights}
    snapped = on_policy_grid(deploy, bits).state_dict()
    for key, value in deploy.state_dict().items():
        if bits.get(key, 32) < 32:
            torch.testing.assert_close(snapped[key], fake_quant_weight(value, bits[key]))
            assert not torch.equal(snapped[key], value)
        else:
            assert torch.equal(snapped[key], value)  # biases and fp32 layers untouched
