"""Tiny VQGAN, CLIP and Inception weights written to disk in the original file formats."""
import argparse
import math

import pytest
import torch
import yaml

CODE_IMAGE_SIZE = 32  # 4x4 = 16 codes per image with the f8 VQGAN
NUM_CODES = (CODE_IMAGE_SIZE // 8) ** 2

# taming's Gumbel f8 / 8192-code layout at toy widths (GroupNorm needs multiples of 32 channels)
TINY_VQGAN_PARAMS = {
    "kl_weight": 1.0e-08,
    "embed_dim": 32,
    "n_embed": 8192,
    "monitor": "val/rec_loss",
    "temperature_scheduler_config": {
        "target": "taming.lr_scheduler.LambdaWarmUpCosineScheduler",
        "params": {"warm_up_steps": 0, "max_decay_steps": 1000001, "lr_start": 0.9, "lr_max": 0.9, "lr_min": 1.0e-06},
    },
    "ddconfig": {
        "double_z": False, "z_channels": 32, "resolution": CODE_IMAGE_SIZE, "in_channels": 3, "out_ch": 3,
        "ch": 32, "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1, "attn_resolutions": [4], "dropout": 0.0,
    },
    "lossconfig": {"target": "taming.modules.losses.vqperceptual.DummyLoss"},
}


def write_vqgan_files(directory, params=TINY_VQGAN_PARAMS, target="taming.models.vqgan.GumbelVQ", seed=0):
    """``last.ckpt`` (Lightning layout, with training-only entries) and ``model.yaml`` of a random GumbelVQ."""
    from models.vqgan import GumbelVQ

    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    vqgan = GumbelVQ(**params)
    state_dict = dict(vqgan.state_dict())
    state_dict["loss.discriminator.main.0.weight"] = torch.zeros(2, 3, 4, 4)  # the GAN loss lives in the checkpoint too
    checkpoint = {
        "epoch": 3, "global_step": 1200, "pytorch-lightning_version": "1.0.8",
        "state_dict": state_dict, "optimizer_states": [], "lr_schedulers": [],
        # Lightning pickles objects besides tensors; weights-only loading refuses them
        "hyper_parameters": argparse.Namespace(n_embed=params["n_embed"]),
    }
    torch.save(checkpoint, directory / "last.ckpt")
    (directory / "model.yaml").write_text(yaml.safe_dump({"model": {"base_learning_rate": 4.5e-06, "target": target,
                                                                   "params": params}}))
    return directory / "last.ckpt", directory / "model.yaml"


@pytest.fixture(scope="module", autouse=True)
def one_intra_op_thread():
    """Tiny convolutions gain nothing from threads, and on a busy machine idle-spinning threads make them many
    times slower; restored after each module so the rest of the suite keeps its setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def code_image_size():
    """Image side of the tiny VQGAN: 32 px, 4x4 = 16 codes."""
    return CODE_IMAGE_SIZE


@pytest.fixture(scope="session")
def write_vqgan():
    """The :func:`write_vqgan_files` helper."""
    return write_vqgan_files


@pytest.fixture(scope="session")
def vqgan_files(tmp_path_factory):
    """(last.ckpt, model.yaml) of a tiny random Gumbel VQGAN."""
    return write_vqgan_files(tmp_path_factory.mktemp("vqgan"))


@pytest.fixture(scope="session")
def clip_file(tmp_path_factory):
    """A tiny random CLIP (ViT, QuickGELU) saved as a state dict in OpenAI's layout, as open_clip reads it."""
    import open_clip

    torch.manual_seed(0)
    model = open_clip.CLIP(
        embed_dim=32,
        vision_cfg=open_clip.CLIPVisionCfg(layers=1, width=64, patch_size=8, image_size=32),
        text_cfg=open_clip.CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=1, layers=1),
        quick_gelu=True,
    )
    path = tmp_path_factory.mktemp("clip") / "ViT-tiny.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def inception_file(tmp_path_factory):
    """Random weights of the FID Inception-v3 architecture (He-initialised so features stay finite)."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            fan_in = module.in_channels * math.prod(module.kernel_size)
            torch.nn.init.normal_(module.weight, std=math.sqrt(2.0 / fan_in))
    path = tmp_path_factory.mktemp("inception") / "pt_inception-random.pth"
    torch.save(model.state_dict(), path)
    return path


# the image_gen task built from fairseq's registry on a two-row TSV, and a small OFA model built by it
IMAGE_GEN_CAPTIONS = ["a red car", "two dogs on the grass"]
SMALL_OFA = dict(encoder_embed_dim=64, decoder_embed_dim=64, encoder_ffn_embed_dim=128, decoder_ffn_embed_dim=128,
                 encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                 resnet_type="resnet18", dropout=0.0, attention_dropout=0.0)


@pytest.fixture(scope="session")
def image_gen_task(tmp_path_factory, vqgan_files, clip_file):
    """image_gen_task(code_image_size, **options) -> the task, ``valid`` loaded (one row per caption above)."""
    import tasks  # noqa: F401  (registers the tasks)
    from fairseq.tasks import setup_task
    from omegaconf import OmegaConf

    def make(code_image_size, **options):
        codes = " ".join(str(i) for i in range((code_image_size // 8) ** 2))
        data = tmp_path_factory.mktemp("image_gen") / "image_gen.tsv"
        data.write_text("".join(f"{i}\t{codes}\t{caption}\n" for i, caption in enumerate(IMAGE_GEN_CAPTIONS)))
        task = setup_task(OmegaConf.create({
            "_name": "image_gen", "data": f"{data},{data}", "selected_cols": "0,2,1",
            "code_image_size": code_image_size, "constraint_range": "50265,58457",
            "vqgan_model_path": str(vqgan_files[0]), "vqgan_config_path": str(vqgan_files[1]),
            "clip_model_path": str(clip_file), **options}))
        task.load_dataset("valid")
        return task
    return make


@pytest.fixture(scope="session")
def small_ofa_model():
    """small_ofa_model(task, code_image_size) -> a small OFA model built by the task as fairseq's trainer does
    (which also builds the task's ``scst_generator`` under ``--scst``)."""
    from models.ofa import OFAModel

    def make(task, code_image_size):
        parser = argparse.ArgumentParser(argument_default=argparse.SUPPRESS)
        OFAModel.add_args(parser)
        model_args = parser.parse_args([])
        vars(model_args).update(arch="ofa_tiny", code_image_size=code_image_size, **SMALL_OFA)
        return task.build_model(model_args)
    return make


@pytest.fixture(scope="session")
def valid_batch():
    """valid_batch(task) -> the collated batch of every ``valid`` row."""
    def make(task):
        dataset = task.datasets["valid"]
        return dataset.collater([dataset[i] for i in range(len(dataset))])
    return make
