"""Loader: tiny checkpoints we write ourselves in the official layout (FP8 + FP4 + ue8m0 scales, several
shards), in transformers' layout and in what transformers `save_pretrained` writes; all load to the same
model. FP8/FP4 de-quantisation checked op by op against the formulas on synthetic tensors."""

import json
import re

import pytest
import torch
from safetensors.torch import save_file

from dsv4.runtime.errors import BadModelFile
from dsv4.runtime.deepseek_v4 import checkpoint as ck
from . import checkpoint_writer as wr

pytest.importorskip("transformers")
from .oracle import build_pair, hf_kwargs, oracle_tie_rule  # noqa: E402


# --- op level ----------------------------------------------------------------------------------------

def test_e8m0_scale_decoding():
    raw = torch.tensor([0, 1, 126, 127, 128, 254], dtype=torch.uint8)
    assert torch.equal(ck.e8m0_to_float(raw), torch.tensor([2.0 ** -127, 2.0 ** -126, 0.5, 1.0, 2.0, 2.0 ** 127]))
    assert torch.equal(ck.e8m0_to_float(raw.view(torch.float8_e8m0fnu)), ck.e8m0_to_float(raw))


def test_fp8_block_dequant_formula():
    g = torch.Generator().manual_seed(0)
    w8 = (torch.randn(200, 300, generator=g) * 50).clamp(-448, 448).to(torch.float8_e4m3fn)
    sbytes = torch.randint(120, 135, (2, 3), generator=g, dtype=torch.uint8)
    got = ck.dequant_fp8_blocks(w8, sbytes.view(torch.float8_e8m0fnu))
    for i in (0, 127, 128, 199):
        for j in (0, 127, 128, 255, 256, 299):
            want = w8[i, j].float() * 2.0 ** (int(sbytes[i // 128, j // 128]) - 127)
            assert got[i, j].item() == want.item()
    # float32 scales (Base checkpoints)
    s32 = torch.rand(2, 3, generator=g) + 0.5
    assert torch.allclose(ck.dequant_fp8_blocks(w8, s32)[130, 260], w8[130, 260].float() * s32[1, 2])


def test_fp4_unpack_and_dequant_formula():
    table = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6]
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, 16, (3, 64), generator=g)
    packed = (codes[:, 0::2] | (codes[:, 1::2] << 4)).to(torch.uint8).view(torch.int8)
    vals = ck.unpack_fp4(packed)
    assert vals.shape == (3, 64)
    for o in range(3):
        for k in range(64):
            assert vals[o, k].item() == table[codes[o, k]]
    sbytes = torch.tensor([[127, 130], [120, 127], [140, 100]], dtype=torch.uint8)
    w = ck.dequant_fp4(packed, sbytes.view(torch.float8_e8m0fnu))
    assert w[2, 33].item() == table[codes[2, 33]] * 2.0 ** (100 - 127)
    assert w[0, 31].item() == table[codes[0, 31]]


def test_quantisers_round_trip_exactly_representable():
    g = torch.Generator().manual_seed(2)
    w = torch.randn(40, 64, generator=g)
    q, s = wr.quant_fp8_blocks(w)
    w8 = ck.dequant_fp8_blocks(q, s)
    q2, s2 = wr.quant_fp8_blocks(w8)
    assert torch.equal(ck.dequant_fp8_blocks(q2, s2), w8)
    assert ((w8 - w).abs() <= w.abs() * 2 ** -4 + w.abs().max() * 2 ** -8).all()  # e4m3: 3 mantissa bits
    p, s4 = wr.quant_fp4(w)
    w4 = ck.dequant_fp4(p, s4)
    p2, s42 = wr.quant_fp4(w4)
    assert torch.equal(ck.dequant_fp4(p2, s42), w4)


# --- model level -------------------------------------------------------------------------------------

def _push_into_hf(hf, ours):
    """Copy our weights into the transformers model, through the same name mapping the loader uses."""
    params = dict(ours.named_parameters()) | dict(ours.named_buffers())
    with torch.no_grad():
        for name, t in hf.state_dict(keep_vars=True).items():
            for nat, view in ck.hf_to_native([(name, t)]):
                nat = re.sub(r"\.hc_(attn|ffn)_(fn|base|scale)$", r".hc_\1.\2", nat)
                view.copy_(params[nat])


def test_official_hf_and_saved_layouts_load_to_the_same_model(tmp_path):
    hf, a = build_pair(7, **hf_kwargs([0, 4, 8, 4], inter=32))
    wr.write_official(a, tmp_path / "official", shards=3)
    files = sorted((tmp_path / "official").glob("*.safetensors"))
    assert len(files) == 3
    from safetensors import safe_open
    dtypes = set()
    for f in files:
        with safe_open(str(f), "pt") as fh:
            dtypes |= {fh.get_slice(k).get_dtype() for k in fh.keys()}
    assert {"F8_E4M3", "F8_E8M0", "I8", "I64", "F32"} <= dtypes
    b = ck.load_v4(tmp_path / "official")
    # FP8 / FP4 weights came back as their de-quantised values, close to the originals
    wa, wb = a.layers[1].attn.wq_b.weight, b.layers[1].attn.wq_b.weight
    assert not torch.equal(wa, wb) and ((wa - wb).abs() <= wa.abs() * 2 ** -3 + 1e-6).all()
    ea, eb = a.layers[1].ffn.experts.w2, b.layers[1].ffn.experts.w2
    assert ((ea - eb).abs() <= ea.abs().amax(-1, keepdim=True) * 0.25 + 1e-6).all()

    # the same (now exactly representable) weights through transformers' two layouts
    _push_into_hf(hf, b)
    hf.save_pretrained(tmp_path / "saved")
    hf_dir = tmp_path / "hf"
    hf_dir.mkdir()
    sd = {k: v.contiguous() for k, v in hf.state_dict().items()}
    keys = sorted(sd)
    half = len(keys) // 2
    save_file({k: sd[k] for k in keys[:half]}, str(hf_dir / "model-00001-of-00002.safetensors"))
    save_file({k: sd[k] for k in keys[half:]}, str(hf_dir / "model-00002-of-00002.safetensors"))
    (hf_dir / "config.json").write_text(json.dumps(hf.config.to_dict()))
    c = ck.load_v4(tmp_path / "saved")
    d = ck.load_v4(hf_dir)
    assert b.mtp_loaded and not c.mtp_loaded and not d.mtp_loaded  # transformers drops the MTP block
    sb = dict(b.state_dict())
    for other in (c, d):
        so = other.state_dict()
        assert so.keys() == sb.keys()
        for k in sb:
            assert torch.equal(sb[k], so[k]), k
    ids = torch.randint(0, 64, (45,), generator=torch.Generator().manual_seed(3))
    lb = b(ids)
    assert torch.equal(lb, c(ids)) and torch.equal(lb, d(ids))
    with torch.no_grad(), oracle_tie_rule():
        ref = hf(ids[None]).logits[0]
    assert (ref - lb).abs().max().item() < 1e-4


def test_missing_tensor_is_refused(tmp_path):
    _, a = build_pair(1, **hf_kwargs([0, 4], inter=32))
    wr.write_official(a, tmp_path, shards=1)
    f = next(tmp_path.glob("*.safetensors"))
    from safetensors.torch import load_file
    t = load_file(str(f))
    del t["layers.1.attn.indexer.weights_proj.weight"]
    save_file(t, str(f))
    with pytest.raises(BadModelFile, match="lacks"):
        ck.load_v4(tmp_path)


def test_mtp_tensors_load_and_scales_pair_across_shards(tmp_path):
    _, a = build_pair(1, **hf_kwargs([0, 4], inter=32))
    wr.write_official(a, tmp_path, shards=2)
    # an MTP tensor (FP8 + scale) in its own shard, the scale stored before its weight
    w = torch.randn(32, 32)
    q, s = wr.quant_fp8_blocks(w)
    save_file({"mtp.0.e_proj.scale": s}, str(tmp_path / "model-00003-of-00004.safetensors"))
    save_file({"mtp.0.e_proj.weight": q, "mtp.0.enorm.weight": torch.ones(32)},
              str(tmp_path / "model-00004-of-00004.safetensors"))
    idx = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    idx["weight_map"].update({"mtp.0.e_proj.scale": "model-00003-of-00004.safetensors",
                              "mtp.0.e_proj.weight": "model-00004-of-00004.safetensors",
                              "mtp.0.enorm.weight": "model-00004-of-00004.safetensors"})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(idx))
    m = ck.load_v4(tmp_path)
    assert m.config.num_mtp_layers == 1 and m.mtp_loaded
    assert torch.equal(m.mtp[0].e_proj.weight, ck.dequant_fp8_blocks(q, s))
    assert torch.equal(m.mtp[0].enorm.weight, torch.ones(32))


def test_weight_scale_inv_naming_is_paired():
    w = torch.randn(40, 200)
    q, s = wr.quant_fp8_blocks(w)
    pairs = [("model.layers.0.self_attn.q_a_proj.weight_scale_inv", s), ("model.layers.0.self_attn.q_a_proj.weight", q)]
    (name, t), = list(ck.hf_to_native(ck.dequantise_official(pairs)))
    assert name == "layers.0.attn.wq_a.weight" and torch.equal(t, ck.dequant_fp8_blocks(q, s))
