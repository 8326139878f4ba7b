"""``restore train``: one module per trainer (``segmenter``, ``pix2pix``, ``colorizer``,
``gfpgan``; also called by their task's word: ``segment``, ``translate``, ``sketch``, ``faces``),
each with its parser and ``run``, and their data checks: segmentation folders (``seg_data``),
image pairs and the report of unusable files (``pairs``), the training crop for images of any
size (``crops``), the held-out validation split they share (``holdout``)."""
