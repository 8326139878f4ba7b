"""Segmentation: ``Segmenter`` (``segmenter``), pre-processing (``preprocess``), post-processing
(``postprocess``), colour overlays (``overlay``), scores against ground truth (``scores``), the
job every runner runs (``job``), the Ray Data UDF (``udf``), and ``restore segment`` /
``restore eval segment`` (``cli``)."""
