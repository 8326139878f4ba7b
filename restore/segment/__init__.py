"""Segmentation: ``Segmenter`` (``segmenter``), pre-processing (``preprocess``), post-processing
(``postprocess``), colour overlays (``overlay``), scores against ground truth (``scores``), and
``restore segment`` / ``restore eval segment`` (``cli``)."""
