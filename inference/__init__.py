"""Predictions on image files and text (the Python API of ``predict.py``)."""
from inference.predictor import OFAPredictor, PredictionError, Request

__all__ = ["OFAPredictor", "PredictionError", "Request"]
