"""gan.nets.dlib_resnet: dlib's face-recognition ResNet read from dlib's own serialisation.

A tiny network is written here in dlib's format (as dlib's serialize() lays it out, in the
newer layer versions: con_6, affine_2, relu_2, fc_3; the published file has the older ones)
and read back; damaged, truncated and foreign files are one-line ValueErrors; and the published
file gives dlib-bin's descriptors on real chips (skipped where dlib or the file is absent)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gan.nets.dlib_resnet import (
    DESCRIPTORS,
    Affine,
    DlibResNet,
    DlibResNetConfig,
    add_prev,
    load_dat,
)
from tests.dlibfiles import WHY, aligned, recognition_dat

TINY = DESCRIPTORS[0].presets["tiny"]


# --------------------------------------------------------------------------- a writer, for the tests
def _int(v: int) -> bytes:
    body = abs(v).to_bytes(max(1, (abs(v).bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if v < 0 else 0)]) + body


def _str(s: str) -> bytes:
    return _int(len(s)) + s.encode()


def _float(v: float) -> bytes:
    return _int(round(v * 2 ** 20)) + _int(-20)


def _tensor(a) -> bytes:
    a = np.asarray(a, "<f4")
    dims = (list(a.shape) + [1, 1, 1, 1])[:4] if a.size else [0, 0, 0, 0]
    return _int(2) + b"".join(_int(d) for d in dims) + a.tobytes()


def _alias(*dims: int) -> bytes:
    return _int(1) + b"".join(_int(d) for d in dims)


def write_dat(net: DlibResNet) -> bytes:
    """``net`` as dlib's serialize() writes its anet_type (the loss, the versions top-down, the
    input, each layer's details bottom-up)."""
    from gan.nets.dlib_resnet import _layers

    c = net.config
    layers = _layers(c)
    mods = iter([m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, Affine))])
    out = [_int(1), _str("loss_metric_2"), _float(0.04), _float(0.6)]
    out += [_int(1 if layers[i][0] in ("tag", "skip") else 2) for i in range(len(layers) - 1, 0, -1)]
    out += [_int(3), _str("input_rgb_image_sized"), *map(_float, c.mean), _int(c.size), _int(c.size)]
    lr = b"".join(_float(1) for _ in range(4))
    for i, layer in enumerate(layers):
        kind = layer[0]
        if kind in ("tag", "skip"):
            continue
        if kind == "con":
            m = next(mods)
            w, b = m.weight.detach().numpy(), m.bias.detach().numpy()
            pad = 0 if layer[3] != 1 else layer[2] // 2
            out += [_str("con_6"), _tensor(np.concatenate([w.ravel(), b])), _int(layer[1]), _int(layer[2]),
                    _int(layer[2]), _int(layer[3]), _int(layer[3]), _int(pad), _int(pad), _alias(*w.shape),
                    _alias(1, layer[1], 1, 1), lr, b"1", b"0"]
        elif kind == "affine":
            m = next(mods)
            out += [_str("affine_2"), _tensor(np.concatenate([m.weight.detach().numpy(), m.bias.detach().numpy()])),
                    _alias(1, layer[1], 1, 1), _alias(1, layer[1], 1, 1), _int(0), b"0"]
        elif kind == "relu":
            out += [_str("relu_2"), b"0"]
        elif kind in ("max_pool", "avg_pool"):
            pad = 0 if layer[2] != 1 else layer[1] // 2
            out += [_str(f"{kind}_2"), _int(layer[1]), _int(layer[1]), _int(layer[2]), _int(layer[2]), _int(pad),
                    _int(pad)]
        elif kind == "add_prev":
            out += [_str("add_prev_")]
        elif kind == "fc":
            w = net.fc.weight.detach().numpy().T  # dlib's inputs x outputs
            out += [_str("fc_3"), _int(layer[1]), _int(layer[2]), _tensor(w.ravel()), _alias(*w.shape, 1, 1),
                    _alias(0, 0, 0, 0), _int(1), lr, b"0"]
        out += [b"1", b"0", b"0", _tensor([]), _tensor([]), _tensor([])]
        if i == 0:
            out.append(_int(1))
    return b"".join(out)


def _random_tiny(seed: int = 0) -> DlibResNet:
    torch.manual_seed(seed)
    net = DlibResNet(TINY)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape) * 0.1)
    return net.eval()


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    net = _random_tiny()
    path = tmp_path_factory.mktemp("dat") / "tiny.dat"
    path.write_bytes(write_dat(net))
    return net, path


# --------------------------------------------------------------------------- the network
def test_add_prev_zero_pads_the_smaller_tensor():
    a, b = torch.ones(1, 2, 3, 3), torch.full((1, 4, 4, 4), 2.0)
    s = add_prev(a, b)
    assert s.shape == (1, 4, 4, 4)
    assert torch.all(s[:, :2, :3, :3] == 3) and torch.all(s[:, 2:] == 2) and torch.all(s[:, :, 3] == 2)


def test_published_shape_ends_in_2x2_and_256_channels():
    net = DlibResNet()
    assert sum(p.numel() for p in net.parameters()) == 5_614_592  # 22.46 MB of float32: the .dat, less 7.8 kB of headers
    feats = {}
    net.blocks[-1].register_forward_hook(lambda m, i, o: feats.setdefault("x", o))
    with torch.inference_mode():
        assert net(torch.rand(1, 3, 150, 150)).shape == (1, 128)
    assert feats["x"].shape == (1, 256, 2, 2)  # 8 px -> a 3 px block and a 4 px pool -> 4, then 2
    with pytest.raises(ValueError, match="shrinks to nothing"):
        DlibResNetConfig(size=40)


def test_tiny_file_reads_back_exactly(tiny_file):
    net, path = tiny_file
    loaded = load_dat(path, TINY)
    assert loaded.config == TINY and not any(p.requires_grad for p in loaded.parameters())
    x = torch.rand(2, 3, TINY.size, TINY.size)
    with torch.inference_mode():
        assert torch.equal(loaded(x), net(x))
    for (k, a), b in zip(net.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k


def test_truncated_files_are_one_line_errors(tiny_file):
    _, path = tiny_file
    data = path.read_bytes()
    cuts = sorted(set(np.linspace(0, len(data) - 1, 60).astype(int).tolist()) | {len(data) - 1})
    for n in cuts:
        path.with_name("cut.dat").write_bytes(data[:n])
        with pytest.raises(ValueError) as e:
            load_dat(path.with_name("cut.dat"), TINY)
        msg = str(e.value)
        assert "\n" not in msg and "is not dlib's face-recognition network" in msg, (n, msg)
    path.with_name("long.dat").write_bytes(data + b"\x00")
    with pytest.raises(ValueError, match="1 bytes after the network"):
        load_dat(path.with_name("long.dat"), TINY)


@pytest.mark.parametrize("old,new,why", [
    (b"\rloss_metric_2", b"\rloss_metric_9", "the loss layer is 'loss_metric_9'"),
    (b"\x05con_6", b"\x05cxn_6", "layer 0 \\(con\\) is 'cxn_6'"),
    (b"\x15input_rgb_image_sized", b"\x15input_rgb_image_sizex", "the input layer is 'input_rgb_image_sizex'"),
    (b"\x08affine_2", b"\x08affine_3", "is 'affine_3', expected 'affine_' or 'affine_2'"),
])
def test_foreign_or_damaged_files_say_where(tiny_file, tmp_path, old, new, why):
    data = tiny_file[1].read_bytes()
    assert old in data
    (tmp_path / "bad.dat").write_bytes(data.replace(old, new, 1))
    with pytest.raises(ValueError, match=why):
        load_dat(tmp_path / "bad.dat", TINY)


def test_sizes_are_bounded_by_the_file(tiny_file, tmp_path):
    """A tensor claiming 2^60 values is refused before anything is allocated; the published
    network's layout refuses the tiny file; random bytes are refused."""
    data = tiny_file[1].read_bytes()
    first = data.index(b"\x05con_6") + 6  # the first convolution's parameter tensor: version, 4 dims
    head = _int(2) + b"".join(_int(d) for d in (1, 1, 1, 1 << 60))
    (tmp_path / "huge.dat").write_bytes(data[:first] + head + data[first + len(head):])
    with pytest.raises(ValueError, match="needs 4611686018427387904 bytes, the file has"):
        load_dat(tmp_path / "huge.dat", TINY)
    with pytest.raises(ValueError, match="layer 109's \\(tag\\) version is 2, expected 1"):
        load_dat(tiny_file[1])
    rng = np.random.default_rng(0)
    for k in range(20):
        (tmp_path / "noise.dat").write_bytes(rng.bytes(int(rng.integers(1, 4000))))
        with pytest.raises(ValueError, match="is not dlib's face-recognition network"):
            load_dat(tmp_path / "noise.dat")


# --------------------------------------------------------------------------- against dlib
def test_descriptors_equal_dlibs_on_real_chips():
    dlib = pytest.importorskip("dlib", reason="dlib-bin is the test oracle (pip install dlib-bin)")
    dat = recognition_dat()
    if dat is None:
        pytest.skip(WHY)
    from restore.faces.identity import cut_chip

    chips = [cut_chip(aligned(w)) for w in ("astronaut", "hopper")]
    chips.append(np.ascontiguousarray(chips[0][:, ::-1]))  # a mirrored one
    theirs = dlib.face_recognition_model_v1(str(dat))
    want = np.array([np.array(theirs.compute_face_descriptor(c)) for c in chips])
    net = load_dat(dat)
    with torch.inference_mode():
        got = net(torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float() / 255).numpy()
    assert np.abs(got - want).max() <= 1e-4
