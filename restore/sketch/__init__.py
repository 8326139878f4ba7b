"""Sketches: extraction (XDoG, threshold, HED: ``extract``), the reference-guided ``Colorizer``
and its flat-fill baselines (``colorizer``), and ``restore sketch`` (``cli``)."""
