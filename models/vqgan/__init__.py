"""Gumbel VQGAN image tokenizer: OFA's ``<code_i>`` tokens <-> pixels."""
from models.vqgan.gumbel_vq import (  # noqa: F401
    GumbelQuantize,
    GumbelVQ,
    load_lightning_state_dict,
    load_vqgan,
    load_vqgan_config,
)
