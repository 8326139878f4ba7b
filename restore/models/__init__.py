"""Models and weights: the manifest and the checks every file passes (``manifest``), finding,
fetching, importing and loading (``cache``), checked downloads (``download``), published
checkpoints and their conversion to safetensors (``published``), and ``restore weights``
(``cli``)."""
