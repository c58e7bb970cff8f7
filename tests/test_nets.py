"""The generators: the paper's exact parameter count and layer order, the
other architectures, and their options."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import deepprior.nets.layers as layers_module
from deepprior.nets import build_net, count_parameters, deep_decoder, meshgrid_input, noise_input, resnet, skip, unet
from deepprior.nets.layers import Concat
from deepprior.presets import PRESETS


def test_paper_network_has_the_original_parameter_count() -> None:
    assert count_parameters(build_net("skip", 32, 3, **PRESETS["denoise"].net_options)) == 2_217_831
    assert count_parameters(skip(32, 3)) == 2_217_831


def test_paper_network_layer_order_matches_the_original() -> None:
    net = skip(32, 3)
    first_scale = [type(m).__name__ for m in net][:8]
    assert first_scale == ["Concat", "BatchNorm2d", "Sequential", "BatchNorm2d", "LeakyReLU", "Sequential",
                           "BatchNorm2d", "LeakyReLU"]
    skip_branch, deeper = net[0].branches
    assert [type(m).__name__ for m in skip_branch] == ["Sequential", "BatchNorm2d", "LeakyReLU"]
    down_conv = deeper[0]
    assert isinstance(down_conv[0], nn.ReflectionPad2d) and down_conv[1].stride == (2, 2)
    assert isinstance(net[-1], nn.Sigmoid)
    leaky = [m for m in net.modules() if isinstance(m, nn.LeakyReLU)]
    assert leaky and all(m.negative_slope == 0.2 for m in leaky)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_network_builds_and_runs(preset: str) -> None:
    p = PRESETS[preset]
    in_ch = {"noise": p.input_channels, "meshgrid": 2, "image": 3, "measurement": 3}[p.input_kind]
    net = build_net(p.net, in_ch, 3, **p.net_options)
    side = net.min_size
    with torch.no_grad():
        out = net(torch.rand(1, in_ch, side, side))
    assert out.shape == (1, 3, side, side)
    assert 0 <= float(out.min()) and float(out.max()) <= 1


def test_depth_six_network_needs_multiples_of_64() -> None:
    net = build_net("skip", 1, 3, **PRESETS["inpaint-deep"].net_options)
    assert net.size_multiple == 64
    assert net.min_size == 192  # 5x5 filters need 3 pixels at the coarsest scale


def test_no_skip_network_has_no_concat() -> None:
    net = skip(2, 3, channels_skip=(0,) * 5)
    assert not any(isinstance(m, Concat) for m in net.modules())


@pytest.mark.parametrize("mode", ["stride", "avg", "max", "lanczos2", "lanczos3"])
def test_downsample_modes_keep_the_geometry(mode: str) -> None:
    net = skip(4, 3, channels_down=(8, 8), channels_up=(8, 8), channels_skip=(2, 2), downsample_mode=mode)
    assert net(torch.rand(1, 4, 16, 16)).shape == (1, 3, 16, 16)


def test_per_scale_options_and_bad_options() -> None:
    net = skip(4, 3, channels_down=(8, 8), channels_up=(8, 8), channels_skip=(2, 2),
               upsample_mode=("nearest", "bilinear"), filter_size_down=(3, 5), act="ELU", pad="zero")
    assert net(torch.rand(1, 4, 16, 16)).shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="one per scale"):
        skip(4, 3, channels_down=(8, 8), channels_up=(8, 8), channels_skip=(2, 2), upsample_mode=("nearest",))
    with pytest.raises(ValueError, match="activation"):
        skip(4, 3, act="nope")
    with pytest.raises(ValueError, match="padding"):
        skip(4, 3, pad="circular")
    with pytest.raises(ValueError, match="unknown network"):
        build_net("transformer", 3, 3)


def test_no_1x1_and_no_sigmoid_change_the_parameter_count() -> None:
    full = count_parameters(skip(32, 3))
    lean = count_parameters(skip(32, 3, need_1x1_up=False))
    assert full - lean == 5 * (128 * 128 + 128 + 2 * 128)


def test_unet_resnet_shapes() -> None:
    u = build_net("unet", 8, 3, feature_scale=8, upsample_mode="bilinear")
    assert u.size_multiple == 16
    assert u(torch.rand(1, 8, 32, 32)).shape == (1, 3, 32, 32)
    r = resnet(8, 1, blocks=2, channels=8)
    assert r(torch.rand(1, 8, 11, 13)).shape == (1, 1, 11, 13)
    deconv = unet(3, 3)
    assert deconv(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_deep_decoder_is_under_parameterised_and_upsamples() -> None:
    net = build_net("deep_decoder", 64, 3, channels=64, layers=6)
    assert count_parameters(net) == 64 * 64 * 6 + 64 * 3
    assert net.input_downscale == 32
    assert net(torch.rand(1, 64, 2, 3)).shape == (1, 3, 64, 96)
    assert count_parameters(deep_decoder(1, channels=16, layers=3)) == 16 * 16 * 3 + 16


def test_inputs() -> None:
    z = noise_input(32, 16, 8, generator=torch.Generator().manual_seed(0))
    assert z.shape == (1, 32, 16, 8) and 0 <= float(z.min()) and float(z.max()) < 0.1
    again = noise_input(32, 16, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(z, again)
    grid = meshgrid_input(4, 6)
    assert grid.shape == (1, 2, 4, 6)
    assert float(grid[0, 0, 0, -1]) == 1.0 and float(grid[0, 1, -1, 0]) == 1.0 and float(grid.min()) == 0.0


def test_channels_last_branches_get_dense_gradients_with_unchanged_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """The skip network's branches get their gradient back as dense channels-last tensors (CPU kernels take a
    slow path on the strided slices of the concatenation's gradient), and the gradients are those of the plain
    layout."""
    returned: list[torch.Tensor] = []
    original = layers_module._dense_gradient

    def recording(grad: torch.Tensor) -> torch.Tensor:
        dense = original(grad)
        returned.append(dense)
        return dense

    options = {"channels_down": [4, 6], "channels_up": [4, 6], "channels_skip": [2, 2]}
    torch.manual_seed(0)
    net = build_net("skip", 3, 3, **options).double()
    z = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    target = torch.rand(1, 3, 16, 16, dtype=torch.float64)

    def gradients(channels_last: bool) -> list[torch.Tensor]:
        model, x = net, z
        if channels_last:
            model = copy.deepcopy(net).to(memory_format=torch.channels_last)
            x = z.contiguous(memory_format=torch.channels_last)
        model.zero_grad()
        torch.mean((model(x) - target) ** 2).backward()
        return [p.grad.clone() for p in model.parameters()]

    monkeypatch.setattr(layers_module, "_dense_gradient", recording)
    plain = gradients(False)
    assert returned == []  # nothing is copied in the plain layout
    dense = gradients(True)
    assert len(returned) == 4  # the skip branch and the deeper branch of both scales
    assert all(g.is_contiguous(memory_format=torch.channels_last) for g in returned)
    for a, b in zip(plain, dense):
        torch.testing.assert_close(a, b)
