"""Importing ``tasks`` registers every OFA task with fairseq."""
from tasks.ofa_task import OFAConfig, OFATask  # noqa: F401
from tasks.cv_tasks.image_classify import ImageClassifyTask  # noqa: F401
from tasks.mm_tasks.caption import CaptionTask  # noqa: F401
from tasks.mm_tasks.image_gen import ImageGenTask  # noqa: F401
from tasks.mm_tasks.ocr import OcrTask  # noqa: F401
from tasks.mm_tasks.refcoco import RefcocoTask  # noqa: F401
from tasks.mm_tasks.snli_ve import SnliVeTask  # noqa: F401
from tasks.mm_tasks.vqa_gen import VqaGenTask  # noqa: F401
from tasks.nlg_tasks.gigaword import GigawordTask  # noqa: F401
from tasks.nlu_tasks.glue import COLATask, MNLITask, MRPCTask, QNLITask, QQPTask, RTETask, SST2Task  # noqa: F401
from tasks.pretrain_tasks.unify_task import UnifyTask  # noqa: F401
