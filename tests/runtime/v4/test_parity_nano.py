"""Second oracle: nano-deepseek-v4==0.2.0 on the same weights (converted by its own official-layout
converter from our native state dict).

nano 0.2.0 follows the paper's mHC, not the released code: post = sigmoid + eps instead of 2*sigmoid,
sigmoid instead of softmax before Sinkhorn, and the mixing matrix applied untransposed. So its attention
(sliding, CSA with compressor + indexer, HCA) and MoE (hash and learned routing) are compared layer by
layer, and the whole model after its `HyperConnection.forward` is replaced by the official formula
(written here from the architecture notes, §2 `hc_pre`/`hc_post`). nano has neither YaRN nor a separate
compress_rope_theta, so these tests use a plain-RoPE config with one theta.
"""

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("nano_deepseek_v4")
pytest.importorskip("transformers")

from nano_deepseek_v4.checkpoint import convert_deepseek_official_state_dict  # noqa: E402
from nano_deepseek_v4.config import DeepSeekV4Config as NanoConfig  # noqa: E402
from nano_deepseek_v4.modeling import DeepSeekV4ForCausalLM as NanoModel  # noqa: E402

from dsv4.runtime.deepseek_v4.cache import V4LayerCache  # noqa: E402
from .checkpoint_writer import config_to_hf, native_state_dict  # noqa: E402

from .oracle import _stable_topk_method, build_pair, hf_kwargs  # noqa: E402


@pytest.fixture(scope="module")
def pair():
    kw = hf_kwargs([0, 4, 8, 4], yarn=False, hash_layers=1, topk=3)
    kw["compress_rope_theta"] = 10000.0
    _, ours = build_pair(11, **kw)
    c = config_to_hf(ours.config) | {"compress_rate_hca": 8, "num_nextn_predict_layers": 0}
    nano = NanoModel(NanoConfig.from_official_json(c)).eval()
    # nano's MTP takes the collapsed hidden state, not the official streams, so its MTP is left out
    backbone = {k: v for k, v in native_state_dict(ours).items() if not k.startswith("mtp.")}
    sd, report = convert_deepseek_official_state_dict(backbone, nano)
    assert not report.unconverted_keys
    nano.load_state_dict(sd, strict=False)
    return ours, nano


@pytest.fixture
def tie_rule():
    saved = torch.Tensor.topk
    torch.Tensor.topk = _stable_topk_method
    yield
    torch.Tensor.topk = saved


@pytest.mark.parametrize("layer", [0, 1, 2, 3])
def test_attention_layer_full_and_chunked(pair, tie_rule, layer):
    ours, nano = pair
    T = 45
    x = torch.randn(1, T, 32, generator=torch.Generator().manual_seed(layer))
    with torch.no_grad():
        ref = nano.model.layers[layer].self_attn(x, torch.arange(T)[None])[0]
    cfg = ours.config
    full = ours.layers[layer].attn(x[0], 0, V4LayerCache(cfg.head_dim, cfg.index_head_dim, cfg.compress_ratios[layer]))
    assert (ref - full).abs().max().item() < 1e-5
    lc = V4LayerCache(cfg.head_dim, cfg.index_head_dim, cfg.compress_ratios[layer])
    outs, pos = [], 0
    for size in (3, 1, 9, 2, 13, 1, 1, 15):
        outs.append(ours.layers[layer].attn(x[0, pos:pos + size], pos, lc))
        pos += size
    assert (ref - torch.cat(outs)).abs().max().item() < 1e-5


@pytest.mark.parametrize("layer", [0, 2])  # hash routing, learned routing
def test_moe_layer(pair, layer):
    ours, nano = pair
    T = 30
    g = torch.Generator().manual_seed(9)
    x = torch.randn(1, T, 32, generator=g)
    ids = torch.randint(0, 64, (1, T), generator=g)
    with torch.no_grad():
        ref = nano.model.layers[layer].moe(x, ids)[0][0]
    got = ours.layers[layer].ffn(x[0], ids[0])
    assert (ref - got).abs().max().item() < 1e-5


def official_hc_forward(self, streams):
    """The released mHC for nano's HyperConnection: returns (post, comb^T, collapsed), since nano's layer
    mixes with `comb @ streams` and the official h'_k sums comb[j, k] * h_j."""
    hc, eps = self.hc_mult, self.eps
    mix = F.linear(self.input_norm(streams.flatten(start_dim=2).float()), self.fn.float())
    s_pre, s_post, s_comb = self.scale.float().unbind(0)
    base = self.base.float()
    pre = torch.sigmoid(mix[..., :hc] * s_pre + base[:hc]) + eps
    post = 2 * torch.sigmoid(mix[..., hc:2 * hc] * s_post + base[hc:2 * hc])
    comb = (mix[..., 2 * hc:].view(*mix.shape[:-1], hc, hc) * s_comb + base[2 * hc:].view(hc, hc)).softmax(-1) + eps
    comb = comb / (comb.sum(-2, keepdim=True) + eps)
    for _ in range(self.sinkhorn_iters - 1):
        comb = comb / (comb.sum(-1, keepdim=True) + eps)
        comb = comb / (comb.sum(-2, keepdim=True) + eps)
    collapsed = (pre.unsqueeze(-1) * streams).sum(dim=2)
    return post, comb.transpose(-1, -2), collapsed


@pytest.fixture
def official_mhc(monkeypatch):
    from nano_deepseek_v4.modeling import HyperConnection

    monkeypatch.setattr(HyperConnection, "forward", official_hc_forward)


def test_whole_model_with_the_official_mhc(pair, tie_rule, official_mhc):
    ours, nano = pair
    ids = torch.randint(0, 64, (50,), generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        ref = nano(ids[None]).logits[0]
    full = ours(ids)
    assert (ref - full).abs().max().item() < 1e-4
    cache, parts, pos = ours.new_cache(), [], 0
    for size in (17, 1, 1, 6, 1, 24):
        parts.append(ours(ids[pos:pos + size], cache))
        pos += size
    assert (ref - torch.cat(parts)).abs().max().item() < 1e-4
