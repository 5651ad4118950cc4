"""--quantize int8: the Transformer layers' Linear modules in int8, generation close to fp32's."""
import copy

import pytest
import torch
from torch import nn

from data.dictionary import load_ofa_dictionary
from models.ofa import build_ofa_model
from models.quantization import quantize_for_inference
from models.sequence_generator import EnsembleModel, SequenceGenerator


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    dictionary = load_ofa_dictionary(num_bins=16)
    model = build_ofa_model("ofa_tiny", dictionary=dictionary, patch_image_size=64, encoder_layers=2, decoder_layers=2, encoder_embed_dim=64,
                            decoder_embed_dim=64, encoder_ffn_embed_dim=128, decoder_ffn_embed_dim=128,
                            encoder_attention_heads=2, decoder_attention_heads=2, resnet_type="resnet18").eval()
    return dictionary, model


def _batch(dictionary, bsz=2, size=64):
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(4, 1000, (bsz, 8), generator=g)
    tokens[:, -1] = dictionary.eos()
    return {"id": torch.arange(bsz), "net_input": {"src_tokens": tokens, "src_lengths": torch.full((bsz,), 8),
                          "patch_images": torch.randn(bsz, 3, size, size, generator=g),
                          "patch_masks": torch.ones(bsz, dtype=torch.bool)}}


def test_only_the_layers_linears_are_int8_and_logits_stay_close(tiny):
    dictionary, model = tiny
    quantized = quantize_for_inference(copy.deepcopy(model), "int8")
    int8 = torch.ao.nn.quantized.dynamic.Linear
    linears = {name: type(m) for name, m in quantized.named_modules() if isinstance(m, (nn.Linear, int8))}
    in_layers = {name: kind for name, kind in linears.items() if ".layers." in name}
    assert len(in_layers) == 2 * (4 + 2) + 2 * (8 + 2)  # encoder: self-attn + FFN; decoder: + cross-attn
    assert set(in_layers.values()) == {int8}
    outside = {name: kind for name, kind in linears.items() if name not in in_layers}
    assert {"encoder.image_proj", "decoder.output_projection", "encoder.pos_q_linear"} <= set(outside)
    assert set(outside.values()) == {nn.Linear}  # position biases are computed once a batch: kept in float
    batch = _batch(dictionary)
    prev = torch.full((2, 5), dictionary.bos())
    with torch.no_grad():
        ref = model(**batch["net_input"], prev_output_tokens=prev)[0]
        out = quantized(**batch["net_input"], prev_output_tokens=prev)[0]
    assert not torch.equal(ref, out)  # the layers really run in int8
    assert torch.allclose(ref.softmax(-1), out.softmax(-1), atol=2e-2)
    generator = SequenceGenerator([model], dictionary, beam_size=3, max_len_b=6, min_len=6)
    hyp_ref = generator.generate(EnsembleModel([model], incremental=True), batch)
    hyp_q = generator.generate(EnsembleModel([quantized], incremental=True), batch)
    assert [len(h) for h in hyp_q] == [len(h) for h in hyp_ref] == [3, 3]


def test_refusals_name_the_flag(tiny):
    _, model = tiny
    assert quantize_for_inference(model, "none") is model
    with pytest.raises(ValueError, match="--quantize: unknown mode 'int4'"):
        quantize_for_inference(model, "int4")
    with pytest.raises(ValueError, match="drop --fp16/--bf16"):
        quantize_for_inference(copy.deepcopy(model).bfloat16(), "int8")
