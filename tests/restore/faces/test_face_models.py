"""restore.faces.models with RestoreFormer and CodeFormer: a published ``.pth`` of either (told
apart by its keys), and the manifest names through load_network; the face restorer runs them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gan.nets.codeformer import CodeFormer, CodeFormerConfig
from gan.nets.gfpgan import GFPGAN, GFPGAN_PRESETS
from gan.nets.restoreformer import RestoreFormer, RestoreFormerConfig
from restore import FaceRestorer
from restore.faces.models import load_face_model, load_published_face
from restore.models.manifest import sha256
from tests.gan.nets.test_stylegan2 import randomize_

CPU = torch.device("cpu")
# Small networks whose configs their .pth's shapes give back (the heads are the published 8).
RF = RestoreFormerConfig(resolution=64, ch=32, ch_mult=(1, 2, 4), num_res_blocks=1, z_channels=64, embed_dim=64,
                         n_embed=64, head_size=8)
CF = CodeFormerConfig(img_size=64, nf=32, ch_mult=(1, 1, 1), res_blocks=1, attn_resolutions=(16,), emb_dim=64,
                      codebook_size=64, dim_embd=64, n_head=8, n_layers=1, connect_list=("32", "64"))


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """name -> (network with random weights, its .pth as the published files nest it)."""
    folder = tmp_path_factory.mktemp("pth")
    torch.manual_seed(0)
    nets = {"RestoreFormer": randomize_(RestoreFormer(RF)).eval(), "CodeFormer": randomize_(CodeFormer(CF)).eval(),
            "GFPGAN": randomize_(GFPGAN(GFPGAN_PRESETS["tiny"])).eval()}
    out = {}
    for name, net in nets.items():
        path = folder / f"{name}.pth"
        torch.save({"params" if name == "RestoreFormer" else "params_ema": net.state_dict()}, path)
        out[name] = (net, path)
    return out


def faces(n: int, size: int) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(3)) * 2 - 1


@pytest.mark.parametrize("name", ["RestoreFormer", "CodeFormer", "GFPGAN"])
def test_a_published_pth_is_told_by_its_keys(published, name):
    net, path = published[name]
    model, info = load_face_model(path, CPU)
    assert type(model) is type(net) and model.config == net.config and not model.training
    assert str(path) in info and info.startswith({"GFPGAN": "GFP-GAN"}.get(name, name))
    size = model.config.resolution if name == "RestoreFormer" else getattr(model.config, "img_size", 32)
    x = faces(1, size)
    with torch.no_grad():
        assert torch.equal(model(x), net(x))
    assert type(load_published_face(path)[0]) is type(net)


def test_manifest_names_load_through_the_cache(published, tmp_path, monkeypatch):
    """``restoreformer`` / ``codeformer`` as manifest names: the verified .pth, loaded by its
    architecture's own reader (and converted once to safetensors)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    lines = []
    for name, arch in (("restoreformer", "RestoreFormer"), ("codeformer", "CodeFormer")):
        path = cache / f"{name}.pth"
        path.write_bytes(published[arch][1].read_bytes())
        lines.append(f'[models.{name}]\nfile = "{name}.pth"\nurl = "https://example.invalid/{name}.pth"\n'
                     f'sha256 = "{sha256(path)}"\narch = "{arch}"\ntask = "faces"\nlicence = "test"\n')
    (tmp_path / "manifest.toml").write_text("\n".join(lines))
    monkeypatch.setenv("RESTORE_MANIFEST", str(tmp_path / "manifest.toml"))
    monkeypatch.setenv("RESTORE_HOME", str(cache))
    for name, arch in (("restoreformer", "RestoreFormer"), ("codeformer", "CodeFormer")):
        for _ in range(2):  # the .pth, then its conversion
            model, info = load_face_model(name, CPU)
            assert type(model).__name__ == arch and info == f"{name} ({arch})"
            assert all(torch.equal(v, published[arch][0].state_dict()[k]) for k, v in model.state_dict().items())
        assert (cache / f"{name}.safetensors").is_file()


def test_the_face_restorer_runs_them_and_w_is_per_request(published):
    """Aligned crops at the network's side; CodeFormer's w from each request's --fidelity."""
    crop = (np.random.default_rng(0).random((80, 80, 3)) * 255).astype(np.uint8)
    for name in ("RestoreFormer", "CodeFormer"):
        fr = FaceRestorer(str(published[name][1]), "mtcnn", precision="fp32", bg="none")
        assert fr.face_size == 64 and type(fr.model).__name__ == name
        out = fr.restore_aligned(crop)
        assert out.shape == crop.shape and out.dtype == np.uint8
    a = fr.with_options(fidelity=1.0).restore_aligned(crop)  # CodeFormer's w = 0: the codebook's face alone
    b = fr.with_options(fidelity=0.0).restore_aligned(crop)  # w = 1: the most of the input's features
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 0.5


def test_the_real_manifest_entries_and_the_licence_in_weights_list(capsys):
    """Both published files are in the manifest with their published configs; CodeFormer's
    non-commercial licence shows in ``restore weights list`` (and the app's licence table, which
    prints the same field and its note)."""
    from gan.nets import codeformer, restoreformer
    from restore.cli import main
    from restore.models.manifest import entry

    rf, cf = entry("restoreformer"), entry("codeformer")
    assert restoreformer.RestoreFormerConfig(**rf["config"]) == restoreformer.PRESETS["published"]
    assert codeformer.CodeFormerConfig(**cf["config"]) == codeformer.PRESETS["published"]
    assert (rf["arch"], rf["task"], rf["licence"], rf["bytes"]) == ("RestoreFormer", "faces", "Apache-2.0", 290_785_322)
    assert (cf["arch"], cf["task"], cf["bytes"]) == ("CodeFormer", "faces", 376_637_898)
    assert "non-commercial" in cf["licence"].lower() and "non-commercial" in cf["licence_note"].lower()
    assert main(["weights", "list"]) == 0
    line = next(row for row in capsys.readouterr().out.splitlines() if row.startswith("codeformer "))
    assert "NON-COMMERCIAL" in line
