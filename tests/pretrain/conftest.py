"""Fixtures of the pretraining tests: a ``unify_task`` over hand-made rows written to real TSV files."""
import json

import pytest
from omegaconf import OmegaConf

from unify_rows import NEGATIVE_CAPTIONS, NEGATIVE_OBJECTS, TYPE2ANS


@pytest.fixture
def make_unify(tmp_path):
    """make_unify(vl_rows, split="train", text_rows=None, image_rows=None, detection_rows=None, **options)
    -> (task, dataset) of the registered ``unify_task`` with every file written under tmp_path."""
    import tasks  # noqa: F401  (registers unify_task)
    from fairseq.tasks import setup_task

    negatives = tmp_path / "negative_sample"
    negatives.mkdir()
    (negatives / "all_captions.txt").write_text("\n".join(NEGATIVE_CAPTIONS) + "\n")
    (negatives / "object.txt").write_text("\n".join(NEGATIVE_OBJECTS) + "\n")
    (negatives / "type2ans.json").write_text(json.dumps(TYPE2ANS))

    def write(name, rows):
        path = tmp_path / name
        path.write_text("".join("\t".join(map(str, row)) + "\n" for row in rows))
        return str(path)

    def make(vl_rows, split="train", text_rows=None, image_rows=None, detection_rows=None, **options):
        config = {"_name": "unify_task", "data": write("vision_language.tsv", vl_rows),
                  "selected_cols": "0,1,2,3,4,5,6,7", "neg_sample_dir": str(negatives),
                  "patch_image_size": 480, "max_src_length": 80, "max_tgt_length": 30}
        if text_rows is not None:
            config.update(text_data=write("text.tsv", text_rows), text_selected_cols="0,1")
        if image_rows is not None:
            config.update(image_data=write("image.tsv", image_rows), image_selected_cols="0,1,2")
        if detection_rows is not None:
            config.update(detection_data=write("detection.tsv", detection_rows), detection_selected_cols="0,1,2")
        config.update(options)
        task = setup_task(OmegaConf.create(config))
        task.load_dataset(split)
        return task, task.datasets[split]

    return make
