"""Command-line tools: checkpoint conversion, VQGAN code generation (``python -m scripts.NAME``)."""
