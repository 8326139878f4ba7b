"""Face restoration: detection (``detect``), 5-point alignment and paste-back (``align``),
``FaceRestorer`` (``restorer``), the job every runner runs (``job``), the folder run and its
report.json (``folder``), films (``video``: faces tracked across frames, ``track``), the Ray
Data UDF (``udf``), and ``restore faces`` (``cli``)."""
