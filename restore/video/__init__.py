"""Films, for any task: streamed decoding and encoding with their sound kept (``io``), the reader
and writer threads around a task's frames (``stream``), and a run's films one after another
(``folder``). What a task does to a film lives in its task (``restore.faces.video``,
``restore.translate.video``)."""
