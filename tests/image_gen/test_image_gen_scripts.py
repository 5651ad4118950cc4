"""run_scripts/image_gen/*.sh: the original's flags and values (dry runs), clear errors, a real stage-2 training run."""
import ast
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "run_scripts" / "image_gen"
EVAL_ARGS = {"beam": 24, "min_len": 1024, "max_len_a": 0, "max_len_b": 1024, "sampling_topk": 256, "temperature": 1.0}
COMMON = {"--task": "image_gen", "--arch": "ofa_large", "--selected-cols": "0,2,1", "--max-src-length": "64",
          "--max-tgt-length": "1024", "--num-bins": "1000", "--code-image-size": "256",
          "--constraint-range": "50265,58457", "--batch-size-valid": "1", "--best-checkpoint-metric": "score",
          "--maximize-best-checkpoint-metric": True, "--fixed-validation-seed": "7", "--keep-last-epochs": "15",
          "--scale-attn": True, "--disable-entangle": True, "--find-unused-parameters": True,
          "--reset-optimizer": True, "--lr-scheduler": "polynomial_decay", "--clip-norm": "1.0"}


@pytest.fixture
def workspace(tmp_path):
    """The original's file layout (empty placeholders: dry runs only check that paths exist)."""
    for name in ("dataset/coco_image_gen_data/coco_vqgan_train.tsv", "dataset/coco_image_gen_data/coco_vqgan_dev.tsv",
                 "dataset/coco_image_gen_data/coco_vqgan_full_test.tsv", "dataset/coco_image_gen_data/gt_stat.npz",
                 "checkpoints/ofa_large.pt", "checkpoints/image_gen_large_best.pt", "checkpoints/vqgan/last.ckpt",
                 "checkpoints/vqgan/model.yaml", "checkpoints/clip/ViT-B-16.pt",
                 "checkpoints/inception/pt_inception-2015-12-05-6726825d.pth",
                 "saved/40000_2000_1e-3/checkpoint_last.pt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    return tmp_path


def run(script, workspace, **env):
    full_env = {**os.environ, "NUM_GPUS": "0", "NPROC_PER_NODE": "1", "NNODES": "1", "OFA_DRY_RUN": "1",
                "DATASET_ROOT": str(workspace / "dataset"), "CHECKPOINT_ROOT": str(workspace / "checkpoints"),
                "RESULTS_ROOT": str(workspace / "results"), "LOG_DIR": str(workspace / "logs"),
                "SAVE_DIR": str(workspace / "saved"), **env}
    return subprocess.run(["bash", str(SCRIPTS / script)], cwd=workspace, env=full_env, capture_output=True,
                          text=True, timeout=300)


def command(script, workspace, **env):
    result = run(script, workspace, **env)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith(("torchrun ", "python "))]
    assert len(lines) == 1, result.stdout
    return shlex.split(lines[0])


def flags(argv):
    """``--flag=value`` / bare switches -> dict (the last value wins)."""
    parsed = {}
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if eq:
                parsed[name] = value
            elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                parsed[name] = argv[i + 1]
            else:
                parsed[name] = True
    return parsed


def check(got, expected):
    for flag, value in expected.items():
        assert got.get(flag) == value, f"{flag}: {got.get(flag)!r}, the original uses {value!r}"


def test_stage1_has_the_original_values(workspace):
    argv = command("train_image_gen_stage1.sh", workspace)
    assert argv[0] == "torchrun" and Path(argv[argv.index(str(REPO / "train.py"))]).is_absolute()
    got = flags(argv)
    check(got, {**COMMON, "--criterion": "adjust_label_smoothed_cross_entropy", "--label-smoothing": "0.0",
                "--batch-size": "4", "--update-freq": "4", "--lr": "1e-3", "--total-num-update": "40000",
                "--warmup-updates": "2000", "--max-update": "40000", "--encoder-drop-path-rate": "0.1",
                "--decoder-drop-path-rate": "0.1", "--dropout": "0.1", "--attention-dropout": "0.0",
                "--save-interval": "3", "--validate-interval": "3", "--user-dir": str(REPO),
                "--restore-file": str(workspace / "checkpoints/ofa_large.pt"),
                "--vqgan-model-path": str(workspace / "checkpoints/vqgan/last.ckpt"),
                "--vqgan-config-path": str(workspace / "checkpoints/vqgan/model.yaml"),
                "--clip-model-path": str(workspace / "checkpoints/clip/ViT-B-16.pt"),
                "--gen-images-path": str(workspace / "results/image_gen_stage1"), "--cpu": True})
    assert json.loads(got["--eval-args"]) == EVAL_ARGS and "--fp16" not in got and "--scst" not in got
    data = workspace / "dataset/coco_image_gen_data"
    assert f"{data}/coco_vqgan_train.tsv,{data}/coco_vqgan_dev.tsv" in argv


def test_stage2_has_the_original_values(workspace):
    got = flags(command("train_image_gen_stage2.sh", workspace))
    check(got, {**COMMON, "--criterion": "clip_scst_reward_criterion", "--batch-size": "1", "--update-freq": "1",
                "--lr": "1e-6", "--total-num-update": "5000", "--warmup-updates": "0", "--max-update": "5000",
                "--encoder-drop-path-rate": "0.0", "--dropout": "0.0", "--save-interval": "1",
                "--save-interval-updates": "200", "--validate-interval-updates": "200", "--freeze-resnet": True,
                "--scst": True, "--restore-file": str(workspace / "saved/40000_2000_1e-3/checkpoint_last.pt")})
    assert json.loads(got["--scst-args"]) == {**EVAL_ARGS, "beam": 5}
    assert json.loads(got["--eval-args"]) == EVAL_ARGS


def test_evaluation_has_the_original_values(workspace):
    vqgan = str(workspace / "checkpoints/ofa_large.pt")  # any existing file: checks that the variable is honoured
    got = flags(command("evaluate_image_gen.sh", workspace, VQGAN_MODEL_PATH=vqgan))
    check(got, {"--task": "image_gen", "--batch-size": "1", "--seed": "42", "--gen-subset": "test", "--beam": "24",
                "--min-len": "1024", "--max-len-a": "0", "--max-len-b": "1024", "--sampling-topk": "256",
                "--temperature": "1.0", "--code-image-size": "256", "--constraint-range": "50265,58457",
                "--path": str(workspace / "checkpoints/image_gen_large_best.pt")})
    overrides = ast.literal_eval(got["--model-overrides"])
    assert overrides["selected_cols"] == "0,2,1"
    assert overrides["vqgan_model_path"] == vqgan
    assert overrides["clip_model_path"] == str(workspace / "checkpoints/clip/ViT-B-16.pt")
    assert overrides["gen_images_path"] == str(workspace / "results/image_gen")


@pytest.mark.parametrize("script,missing,message", [
    ("evaluate_image_gen.sh", "checkpoints/clip/ViT-B-16.pt", "CLIP ViT-B/16 weights (CLIP_MODEL_PATH) not found"),
    ("evaluate_image_gen.sh", "checkpoints/inception/pt_inception-2015-12-05-6726825d.pth",
     "FID Inception-v3 weights (INCEPTION_WEIGHTS) not found"),
    ("train_image_gen_stage1.sh", "checkpoints/vqgan/model.yaml", "VQGAN config (VQGAN_CONFIG_PATH) not found"),
    ("train_image_gen_stage2.sh", "saved/40000_2000_1e-3/checkpoint_last.pt", "checkpoint to restore"),
    ("train_image_gen_stage1.sh", "dataset/coco_image_gen_data/coco_vqgan_dev.tsv", "data file not found"),
])
def test_missing_inputs_stop_with_a_clear_message(workspace, script, missing, message):
    (workspace / missing).unlink()
    result = run(script, workspace)
    assert result.returncode != 0 and message in result.stderr and str(workspace / missing) in result.stderr


def test_generate_for_vqgan_code_command(workspace, vqgan_files):
    env = {"INPUT_FILE": str(workspace / "dataset/coco_image_gen_data/coco_vqgan_dev.tsv"), "CODE_IMAGE_SIZE": "32",
           "OUTPUT_FILE": str(workspace / "codes.tsv")}
    argv = command("generate_for_vqgan_code.sh", workspace, **env)
    assert argv[:3] == ["python", "-m", "scripts.generate_vqgan_code"]
    check(flags(argv), {"--selected_cols": "0,1,2,3", "--code_image_size": "32", "--vq_model": "vqgan",
                        "--file": env["INPUT_FILE"], "--outputs": env["OUTPUT_FILE"],
                        "--vqgan_model_path": str(workspace / "checkpoints/vqgan/last.ckpt")})


@pytest.mark.slow
def test_stage2_trains_with_the_clip_reward(workspace, vqgan_files, clip_file):
    """A real run through train.py: tiny model, 16 codes per image, 2 CLIP-SCST updates, no validation."""
    rows = "".join(f"{i}\t{' '.join(str((7 * i + j) % 8192) for j in range(16))}\ta caption {i}\n" for i in range(4))
    for name in ("coco_vqgan_train.tsv", "coco_vqgan_dev.tsv"):
        (workspace / "dataset/coco_image_gen_data" / name).write_text(rows)
    tiny = ("--encoder-layers=1 --decoder-layers=1 --encoder-embed-dim=32 --decoder-embed-dim=32 "
            "--encoder-ffn-embed-dim=64 --decoder-ffn-embed-dim=64 --encoder-attention-heads=2 "
            "--decoder-attention-heads=2 --resnet-type=resnet18 --max-update=2 --batch-size=2 --log-interval=1 "
            "--disable-validation")
    scst_args = {**EVAL_ARGS, "beam": 3, "min_len": 16, "max_len_b": 16}
    result = run("train_image_gen_stage2.sh", workspace, OFA_DRY_RUN="", LAUNCHER="python", ARCH="ofa_tiny",
                 RESTORE_FILE="", CODE_IMAGE_SIZE="32", MAX_TGT_LENGTH="16", TOTAL_NUM_UPDATES="2",
                 SCST_ARGS=json.dumps(scst_args), EXTRA_ARGS=tiny, OMP_NUM_THREADS="1",
                 VQGAN_MODEL_PATH=str(vqgan_files[0]), VQGAN_CONFIG_PATH=str(vqgan_files[1]),
                 CLIP_MODEL_PATH=str(clip_file))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    # 2 captions x 3 sampled images per update, each 16 codes + eos; the score is 2.5 x a cosine similarity
    steps = [line for line in result.stdout.splitlines() if "train_inner" in line]
    assert len(steps) == 2 and all("ntokens=102" in line and "nsentences=6" in line for line in steps)
    scores = [float(line.split("score=")[1].split(",")[0]) for line in steps]
    assert all(abs(score) <= 2.5 for score in scores)
    assert (workspace / "saved/2_0_1e-6/checkpoint_last.pt").is_file()
