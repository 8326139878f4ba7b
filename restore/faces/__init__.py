"""Face restoration: detection (``detect``), 5-point alignment and paste-back (``align``),
``FaceRestorer`` (``restorer``), the folder run and its report.json (``folder``), and
``restore faces`` (``cli``)."""
