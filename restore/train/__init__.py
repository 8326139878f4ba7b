"""``restore train``: one module per trainer (``segmenter``, ``pix2pix``, ``colorizer``,
``gfpgan``), each with its parser and ``run``, and their data checks: segmentation folders
(``seg_data``), image pairs and the report of unusable files (``pairs``), the training crop
for images of any size (``crops``)."""
