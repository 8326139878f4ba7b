"""An upscale that cannot fit in memory is refused before any work, in one line that gives the
sizes and what would make it fit (issue 36: "say how large before starting")."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gan.nets.srvgg import SRVGGConfig, SRVGGNetCompact
from gan.serialize import save_model
from restore.cli import main
from restore.imagewrite import write_png
from restore.upscale import memory
from restore.upscale.upscaler import Upscaler

MB = 1024**2


def test_the_estimate_names_sizes_and_the_remedy():
    kw = dict(channels=3, itemsize=1, netscale=4, scale=4, tile_pad=10, num_feat=64)
    memory.check_fits(4000, 3000, tile=400, available=16 * memory.GB, **kw)  # 12 MP at 4x, tiled: fits
    with pytest.raises(ValueError, match=r"4000x3000 at x4 needs about .* GB .* use tiles \(--tile 400") as e:
        memory.check_fits(4000, 3000, tile=0, available=16 * memory.GB, **kw)  # untiled: ~600 GB
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="the result alone does not fit"):
        memory.check_fits(4000, 3000, tile=400, available=400 * MB, **kw)  # the 576 MB result itself
    with pytest.raises(ValueError, match=r"smaller tiles \(e.g. --tile 200\)"):
        memory.check_fits(1000, 1000, tile=400, available=2 * memory.GB, **kw)
    assert memory.available_bytes() is None or memory.available_bytes() > 0


def test_refused_before_the_network_runs(tmp_path, monkeypatch, capsys):
    torch.manual_seed(0)
    net = SRVGGNetCompact(SRVGGConfig(num_feat=4, num_conv=1)).eval()
    calls = []
    net.register_forward_pre_hook(lambda *a: calls.append(1))
    up = Upscaler(net)
    assert up(np.zeros((8, 8, 3), np.uint8)).shape == (32, 32, 3) and calls  # fits: runs
    calls.clear()
    monkeypatch.setattr(memory, "available_bytes", lambda: 64 * 1024)
    with pytest.raises(ValueError, match=r"64x64 at x4 needs about"):
        up(np.zeros((64, 64, 3), np.uint8))
    assert not calls
    # the command: one line for that file, the others done
    model = save_model(net, tmp_path / "tiny.safetensors")
    (tmp_path / "in").mkdir()
    write_png(tmp_path / "in" / "big.png", np.zeros((64, 64, 3), np.uint8))
    write_png(tmp_path / "in" / "small.png", np.zeros((4, 4, 3), np.uint8))
    code = main(["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--weights", str(model)])
    err = capsys.readouterr().err
    assert code == 1 and (tmp_path / "out" / "small_out.png").is_file()
    assert not (tmp_path / "out" / "big_out.png").exists()
    assert sum("big.png" in line and "needs about" in line for line in err.splitlines()) == 1, err
