"""One word per task, everywhere: the manifest, training configs, saved files' metadata, report
fields, app tabs, packages and commands all say the words users type on the command line.

Files written before this table (and old checkpoints) said other words; ``task_word`` reads
them, so nothing saved earlier stops loading.
"""
from __future__ import annotations

TASKS = ("faces", "segment", "sketch", "translate", "upscale")

# The words earlier versions wrote: the manifest and saved metadata ("segmentation",
# "translation", "colorization", "face restoration") and TrainConfig.task ("gan", "colorize",
# "gfpgan").
OLD_WORDS = {
    "face restoration": "faces", "gfpgan": "faces",
    "segmentation": "segment",
    "colorization": "sketch", "colorize": "sketch", "colorizer": "sketch",
    "translation": "translate", "gan": "translate", "pix2pix": "translate",
}


def task_word(word: str) -> str:
    """The task's one word for ``word`` (today's or an earlier version's); ValueError if neither."""
    word = OLD_WORDS.get(word, word)
    if word not in TASKS:
        raise ValueError(f"unknown task {word!r}; one of {', '.join(TASKS)}")
    return word
