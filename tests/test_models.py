"""Detector architectures: shapes, derived sizes, ArcFace numerics, gradients, separability."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from asdlib.config import ConfigError, parse
from asdlib.features import STGRAM_LOGMEL, LogMel, LogMelSettings
from asdlib.models.arcface import ArcFace
from asdlib.models.conformer import ConformerBlock, RelativeMultiHeadAttention
from asdlib.models.conformer_ae import ConformerAE, ConformerAESettings
from asdlib.models.dense_ae import DenseAE
from asdlib.models.mobilefacenet import ChannelPReLU, MobileFaceNet, _ChannelPReLUFunction
from asdlib.models.reconstruction import reconstruction_mse
from asdlib.models.stgram_mfn import STgramMFN, STgramMFNSettings
from asdlib.models.tgram import Tgram

SR = 16000


def _assert_all_parameters_get_gradients(model: torch.nn.Module) -> None:
    missing = [name for name, p in model.named_parameters()
               if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert not missing, f"no gradient for: {missing}"


# ---------------------------------------------------------------- STgram-MFN


@pytest.mark.parametrize("blocks", ["mfn15", "mfn6"])
@pytest.mark.parametrize("seconds", [1, 2, 10])
def test_stgram_mfn_shapes_for_clip_lengths(blocks, seconds):
    torch.manual_seed(0)
    n = seconds * SR
    model = STgramMFN(num_classes=5, num_samples=n, blocks=blocks).eval()
    frames = 1 + n // 512
    # Four stride-2 stages in both configs, each a 3x3/pad 1 conv: ceil(size / 2).
    assert model.backbone.gdc_kernel == (math.ceil(128 / 16), math.ceil(frames / 16))
    with torch.no_grad():
        logits, embedding = model(torch.randn(2, n), torch.tensor([0, 4]))
        plain, embedding2 = model(torch.randn(1, n))
    assert logits.shape == (2, 5) and embedding.shape == (2, 128)
    assert plain.shape == (1, 5) and embedding2.shape == (1, 128)
    assert torch.isfinite(logits).all() and torch.isfinite(embedding).all()


def test_global_depthwise_kernel_for_ten_seconds_is_8_by_20():
    for blocks in ("mfn15", "mfn6"):
        assert MobileFaceNet.final_map_size((128, 313), blocks) == (8, 20)
    model = STgramMFN(3, 160000)
    conv = model.backbone.global_dw[0]
    assert conv.kernel_size == (8, 20) and conv.groups == 512
    assert len(model.backbone.stages) == 15
    assert len(STgramMFN(3, 160000, blocks="mfn6").backbone.stages) == 6


def test_mobilefacenet_stage_structure():
    net = MobileFaceNet((128, 313), "mfn15")
    strides = [b.body[1][0].stride[0] for b in net.stages]
    assert strides == [2, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1]
    residual = [b.residual for b in net.stages]
    assert residual == [s == 1 for s in strides]  # channels are unchanged wherever stride is 1
    assert net.stem[0][0].stride == (2, 2) and net.stem[1][0].groups == 64
    with pytest.raises(ValueError, match="blocks"):
        MobileFaceNet((128, 313), "mfn9")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="MobileFaceNet built for"):
        net(torch.zeros(1, 2, 128, 100))


def test_channel_prelu_is_prelu_in_values_gradients_and_state_dict():
    torch.manual_seed(0)
    ours, reference = ChannelPReLU(6), nn.PReLU(6)
    with torch.no_grad():
        reference.weight.uniform_(-0.5, 0.5)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(3, 6, 5, 7)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    torch.testing.assert_close(ours(x1), reference(x2))
    (ours(x1) ** 2).sum().backward()
    (reference(x2) ** 2).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(ours.weight.grad, reference.weight.grad)
    assert list(ChannelPReLU(4).state_dict()) == list(nn.PReLU(4).state_dict())
    torch.testing.assert_close(ChannelPReLU(4).weight, nn.PReLU(4).weight)


def _five_op_prelu(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The formula the committed results were trained with, op by op."""
    slope = weight.view(1, -1, *([1] * (x.dim() - 2)))
    return torch.relu(x) - slope * torch.relu(-x)


@pytest.mark.parametrize("shape", [(4, 6, 5, 7), (3, 6, 9), (5, 6)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_channel_prelu_has_the_bits_of_the_five_op_formula(shape, channels_last):
    torch.manual_seed(1)
    x = torch.randn(shape) * 3
    x.view(-1)[::5] = 0.0  # zeros: where autograd's relu gradient is 0 on both sides
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.tensor([0.25, -0.7, 1.6, 0.0, 1e-3, -3.0])
    grad = torch.randn(shape)
    prelu = ChannelPReLU(6)
    with torch.no_grad():
        prelu.weight.copy_(weight)
    ours_x, ref_x, ref_w = x.clone().requires_grad_(), x.clone().requires_grad_(), weight.clone().requires_grad_()
    ours = prelu(ours_x)
    reference = _five_op_prelu(ref_x, ref_w)
    ours.backward(grad)
    reference.backward(grad)
    assert torch.equal(ours, reference)
    assert torch.equal(ours_x.grad, ref_x.grad)
    assert torch.equal(prelu.weight.grad, ref_w.grad)


def test_channel_prelu_gradients_pass_gradcheck():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.tensor([0.25, -0.5, 1.5], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_ChannelPReLUFunction.apply, (x, weight))


def test_mobilefacenet_gives_the_same_embedding_for_either_input_layout():
    net = MobileFaceNet((64, 32), "mfn6").eval()
    x = torch.randn(2, 2, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(x.contiguous(memory_format=torch.channels_last)))


@pytest.mark.parametrize("n", [1000, 16000, 16001, 32000, 33000, 160000])
def test_tgram_frames_equal_logmel_frames(n):
    tgram = Tgram(n)
    with torch.no_grad():
        t = tgram(torch.randn(1, n))
    s = LogMel(STGRAM_LOGMEL)(torch.randn(1, n))
    assert t.shape == (1, 128, s.shape[-1]) == (1, 128, 1 + n // 512)
    assert tgram.layers[0][0].normalized_shape == (1 + n // 512,)


def test_tgram_layer_norm_is_over_time():
    tgram = Tgram(16000).eval()
    ln = tgram.layers[0][0]
    x = torch.randn(2, 128, 32)
    normed = ln(x)
    torch.testing.assert_close(normed.mean(dim=-1), torch.zeros(2, 128), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="16000"):
        tgram(torch.zeros(1, 15999))


def test_stgram_input_map_stacks_sgram_then_tgram():
    model = STgramMFN(3, 16000)
    x = torch.randn(2, 16000)
    with torch.no_grad():
        stacked = model.spectro_temporal(x)
    assert stacked.shape == (2, 2, 128, 32)
    torch.testing.assert_close(stacked[:, 0], LogMel(STGRAM_LOGMEL)(x))
    with torch.no_grad():
        torch.testing.assert_close(stacked[:, 1], model.tgram(x))
    with pytest.raises(ValueError, match="16000"):
        model(torch.randn(2, 8000))


def test_stgram_settings_and_logmel_consistency():
    s = parse(STgramMFNSettings, {"blocks": "mfn6", "n_mels": 64}, "model")
    model = STgramMFN.from_settings(s, num_classes=4, num_samples=16000)
    assert model.backbone.gdc_kernel == (4, 2) and model.logmel.settings.n_mels == 64
    assert model.logmel.settings.mel_scale == "htk" and model.logmel.settings.mel_norm == "none"
    with pytest.raises(ConfigError, match="model.blocks"):
        parse(STgramMFNSettings, {"blocks": "mfn7"}, "model")
    with pytest.raises(ValueError, match="n_mels"):
        STgramMFN(4, 16000, n_mels=64, logmel=LogMelSettings(n_mels=128))
    with pytest.raises(ValueError, match="arcface_m"):
        STgramMFNSettings(arcface_m=2.0)
    # an odd window would put the Tgram's frames half a sample off the log-mel's (and give a
    # frame count of its own at some lengths): refused whatever the clip length
    for n in (16000, 16384):
        with pytest.raises(ValueError, match=r"win_length \(1023\) and n_fft \(1024\) must be even"):
            STgramMFN(4, n, logmel=LogMelSettings(win_length=1023))
    with pytest.raises(ValueError, match="clips of 512 samples are too short .* more than 512 samples"):
        STgramMFN(4, 512)
    assert STgramMFN(4, 513).num_frames == 2


def test_stgram_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = STgramMFN(num_classes=3, num_samples=SR, blocks="mfn6")
    labels = torch.tensor([0, 2])
    logits, _ = model(torch.randn(2, SR), labels)
    F.cross_entropy(logits, labels).backward()
    _assert_all_parameters_get_gradients(model)


def test_stgram_margin_scoring_differs_only_at_own_class():
    torch.manual_seed(0)
    model = STgramMFN(num_classes=4, num_samples=SR, blocks="mfn6").eval()
    x = torch.randn(3, SR)
    labels = torch.tensor([1, 3, 0])
    with torch.no_grad():
        with_margin, emb = model(x, labels)
        plain, emb_plain = model(x)
    torch.testing.assert_close(emb, emb_plain)
    own = F.one_hot(labels, 4).bool()
    assert torch.all(with_margin[own] < plain[own])
    torch.testing.assert_close(with_margin[~own], plain[~own])


# ---------------------------------------------------------------- ArcFace


def test_arcface_no_nan_at_cos_plus_minus_one():
    head = ArcFace(16, 3, margin=0.7, scale=30.0)
    w = head.weight.detach()
    emb = torch.stack([w[0] * 2.0, -w[1], w[2]]).requires_grad_()  # cos = +1, -1, +1
    labels = torch.tensor([0, 1, 2])
    logits = head(emb, labels)
    assert torch.isfinite(logits).all()
    F.cross_entropy(logits, labels).backward()
    assert torch.isfinite(emb.grad).all() and torch.isfinite(head.weight.grad).all()
    # cos = +1: target logit s * cos(m) (up to the sine floor); cos = -1: s * (-1 - m sin(pi - m)).
    logits = logits.detach()
    assert float(logits[0, 0]) == pytest.approx(30 * math.cos(0.7), abs=1e-2)
    assert float(logits[1, 1]) == pytest.approx(30 * (-1 - 0.7 * math.sin(math.pi - 0.7)), abs=1e-3)


def test_arcface_margin_formula_and_ordering():
    torch.manual_seed(1)
    head = ArcFace(8, 5, margin=0.7, scale=30.0)
    emb = torch.randn(64, 8)
    labels = torch.randint(0, 5, (64,))
    plain = head(emb)
    with_margin = head(emb, labels)
    assert torch.all(plain.abs() <= 30.0 + 1e-5)
    cos = F.normalize(emb) @ F.normalize(head.weight).T
    torch.testing.assert_close(plain, 30.0 * cos)
    own = F.one_hot(labels, 5).bool()
    assert torch.all(with_margin[own] < plain[own])  # margin lowers the target logit
    torch.testing.assert_close(with_margin[~own], plain[~own])
    theta = torch.arccos(cos[own].clamp(-1, 1))
    expected = torch.where(theta + 0.7 < math.pi, torch.cos(theta + 0.7),
                           torch.cos(theta) - 0.7 * math.sin(math.pi - 0.7))
    torch.testing.assert_close(with_margin[own], 30.0 * expected, atol=1e-4, rtol=1e-4)


def test_arcface_rejects_bad_labels():
    head = ArcFace(8, 3)
    with pytest.raises(ValueError, match="labels"):
        head(torch.randn(2, 8), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="labels"):
        head(torch.randn(2, 8), torch.tensor([0]))


# ---------------------------------------------------------------- Conformer


def _reference_relative_attention(att: RelativeMultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """Loop over (query i, key j) pairs with the distance encoding written out."""
    _, length, d = x.shape
    h, dh = att.n_heads, att.d_head
    q = att.query(x)[0].view(length, h, dh)
    k = att.key(x)[0].view(length, h, dh)
    v = att.value(x)[0].view(length, h, dh)

    def encode(r: int) -> torch.Tensor:
        out = torch.zeros(d)
        for m in range(0, d, 2):
            out[m] = math.sin(r / 10000 ** (m / d))
            out[m + 1] = math.cos(r / 10000 ** (m / d))
        return out

    out = torch.zeros(length, h, dh)
    for head in range(h):
        scores = torch.zeros(length, length)
        for i in range(length):
            for j in range(length):
                p = att.position(encode(i - j)).view(h, dh)[head]
                scores[i, j] = ((q[i, head] + att.content_bias[head]) @ k[j, head]
                                + (q[i, head] + att.position_bias[head]) @ p) / math.sqrt(dh)
        out[:, head] = torch.softmax(scores, dim=-1) @ v[:, head]
    return att.output(out.reshape(length, d))[None]


def test_relative_attention_matches_loop_reference():
    torch.manual_seed(0)
    att = RelativeMultiHeadAttention(8, 2).eval()
    x = torch.randn(1, 6, 8)
    with torch.no_grad():
        torch.testing.assert_close(att(x), _reference_relative_attention(att, x),
                                   atol=1e-5, rtol=1e-5)


def test_attention_is_permutation_sensitive_because_of_positions():
    torch.manual_seed(0)
    att = RelativeMultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 12, 16)
    perm = torch.randperm(12)
    with torch.no_grad():
        assert not torch.allclose(att(x[:, perm]), att(x)[:, perm], atol=1e-4)
        # Control: without the positional term attention is permutation-equivariant.
        att.position.weight.zero_()
        torch.testing.assert_close(att(x[:, perm]), att(x)[:, perm])


@pytest.mark.parametrize("d_model", [64, 32, 16])
def test_conformer_block_shape_and_permutation_sensitivity(d_model):
    torch.manual_seed(0)
    block = ConformerBlock(d_model, n_heads=4, conv_kernel=7).eval()
    x = torch.randn(2, 20, d_model)
    with torch.no_grad():
        y = block(x)
        assert y.shape == x.shape
        perm = torch.randperm(20)
        assert not torch.allclose(block(x[:, perm]), y[:, perm], atol=1e-4)
    torch.testing.assert_close(y.mean(-1), torch.zeros(2, 20), atol=1e-5, rtol=0)  # final LayerNorm


def test_conformer_ae_shapes_and_structure():
    model = ConformerAE(input_dim=128, embed_dim=8, conv_kernel=7).eval()
    x = torch.randn(2, 25, 128)
    with torch.no_grad():
        assert model.encode(x).shape == (2, 25, 8)
        assert model(x).shape == x.shape
        assert model.reconstruction_error(x).shape == (2, 25)
    enc_linear = [(m.in_features, m.out_features) for m in model.encoder
                  if isinstance(m, torch.nn.Linear)]
    dec_linear = [(m.in_features, m.out_features) for m in model.decoder
                  if isinstance(m, torch.nn.Linear)]
    assert enc_linear == [(128, 64), (64, 32), (32, 16), (16, 8)]
    assert dec_linear == [(8, 16), (16, 32), (32, 64), (64, 128)]
    widths = [m.norm.normalized_shape[0] for m in model.encoder if isinstance(m, ConformerBlock)]
    assert widths == [64, 32, 16]
    assert all(k.startswith(("encoder.", "decoder.")) for k in model.state_dict())
    with pytest.raises(ValueError, match="128"):
        model(torch.randn(2, 25, 64))


def test_conformer_encoder_weights_transfer_to_a_fresh_model():
    torch.manual_seed(0)
    pretrained = ConformerAE(conv_kernel=7).eval()
    torch.manual_seed(1)
    fresh = ConformerAE(conv_kernel=7).eval()
    x = torch.randn(2, 15, 128)
    with torch.no_grad():
        assert not torch.allclose(fresh.encode(x), pretrained.encode(x))
        fresh.encoder.load_state_dict(pretrained.encoder.state_dict())
        torch.testing.assert_close(fresh.encode(x), pretrained.encode(x), rtol=0, atol=0)
        assert not torch.allclose(fresh(x), pretrained(x))  # decoders still differ
        fresh.decoder.load_state_dict(pretrained.decoder.state_dict())
        torch.testing.assert_close(fresh(x), pretrained(x), rtol=0, atol=0)


def test_conformer_ae_gradients_and_settings():
    torch.manual_seed(0)
    model = ConformerAE(conv_kernel=5)
    x = torch.randn(2, 10, 128)
    model.reconstruction_error(x).mean().backward()
    _assert_all_parameters_get_gradients(model)
    s = parse(ConformerAESettings, {"widths": [48, 24], "embed_dim": 4, "conv_kernel": 9})
    small = ConformerAE.from_settings(s)
    assert small.encode(torch.randn(1, 5, 128)).shape == (1, 5, 4)
    with pytest.raises(ValueError, match="widths"):
        ConformerAESettings(widths=(64, 30))
    with pytest.raises(ValueError, match="conv_kernel"):
        ConformerAESettings(conv_kernel=8)


# ---------------------------------------------------------------- dense AE


def test_dense_ae_shapes_structure_and_error():
    model = DenseAE()
    linear = [(m.in_features, m.out_features) for m in model.modules()
              if isinstance(m, torch.nn.Linear)]
    assert linear == [(640, 128)] + [(128, 128)] * 3 + [(128, 8), (8, 128)] + [(128, 128)] * 3 \
        + [(128, 640)]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules()) == 9
    x = torch.randn(3, 309, 640)
    model.eval()
    with torch.no_grad():
        recon = model(x)
        assert recon.shape == x.shape
        assert model(x[0]).shape == (309, 640)
        errors = model.reconstruction_error(x)
    assert errors.shape == (3, 309)
    torch.testing.assert_close(errors, ((x - recon) ** 2).mean(-1))
    with pytest.raises(ValueError, match="640"):
        model(torch.randn(4, 128))
    with pytest.raises(ValueError, match="shape"):
        reconstruction_mse(x, x[:, :10])


def test_dense_ae_gradients():
    model = DenseAE(input_dim=40, hidden=16, bottleneck=4, n_hidden_layers=2)
    model.reconstruction_error(torch.randn(8, 40)).mean().backward()
    _assert_all_parameters_get_gradients(model)


# ---------------------------------------------------------------- determinism


def test_same_seed_same_models_and_outputs():
    def run() -> list[torch.Tensor]:
        torch.manual_seed(42)
        models = [DenseAE(), ConformerAE(conv_kernel=5), STgramMFN(3, SR, blocks="mfn6")]
        dense = models[0](torch.randn(4, 640))
        conf = models[1](torch.randn(2, 10, 128))  # train mode: dropout draws from the seed
        logits, emb = models[2](torch.randn(2, SR), torch.tensor([0, 1]))
        params = [torch.cat([p.detach().flatten() for p in m.parameters()]) for m in models]
        return [dense.detach(), conf.detach(), logits.detach(), emb.detach(), *params]

    first, second = run(), run()
    for a, b in zip(first, second):
        assert np.array_equal(a.numpy(), b.numpy())
