"""Videos: streamed decoding and encoding with their sound kept (``restore.video.io``)."""
