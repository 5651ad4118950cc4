"""The OFA model family, registered with fairseq as model ``ofa`` and archs ``ofa_tiny`` .. ``ofa_huge``."""
from .ofa import ARCH_SIZES, ARCH_SIZES_VIT, OFAClassificationHead, OFAModel, OFAModelConfig, build_ofa_model

__all__ = ["ARCH_SIZES", "ARCH_SIZES_VIT", "OFAClassificationHead", "OFAModel", "OFAModelConfig", "build_ofa_model"]
