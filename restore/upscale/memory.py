"""Will an upscale fit in memory? Said before any work, in one line, with what would make it fit.

A 12-megapixel photo at 4x is a 192-megapixel result (576 MB as RGB uint8), and one untiled
RRDBNet pass over it needs tens of gigabytes of activations at the output's size: found out by
the kernel's OOM killer after minutes of work, that is a lost run. ``check_fits`` estimates the
result, the resized copy (a ``scale`` other than the network's) and one tile's float32
activations, and compares them with the memory available now (``MemAvailable``, and the cgroup's
limit when the process runs in a container).
"""
from __future__ import annotations

from pathlib import Path

GB = 1024**3


def available_bytes() -> int | None:
    """Memory this process can still take: the smaller of the kernel's MemAvailable and what its
    cgroup (v2) leaves; None where neither can be read (then nothing is refused)."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            found.append(max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def activation_bytes(in_pixels: int, scale: int, num_feat: int) -> int:
    """float32 activations of one pass over ``in_pixels``: at the output's size the last convs
    hold about three feature maps at once (input, output, activation), at the input's size the
    dense blocks about six. An estimate within a factor of ~2, which is what a refusal needs."""
    return 4 * num_feat * (3 * in_pixels * scale * scale + 6 * in_pixels)


def check_fits(width: int, height: int, channels: int, itemsize: int, *, netscale: int, scale: float,
               tile: int, tile_pad: int, num_feat: int, available: int | None = None) -> None:
    """Raise ValueError (one line: sizes, and what to change) when the upscale cannot fit."""
    available = available_bytes() if available is None else available
    if available is None:
        return
    result = width * height * netscale * netscale * channels * itemsize
    resized = 0 if scale == netscale else int(width * scale) * int(height * scale) * channels * itemsize
    side_h, side_w = (min(tile + 2 * tile_pad, height), min(tile + 2 * tile_pad, width)) if tile else (height, width)
    activations = activation_bytes(side_h * side_w, netscale, num_feat)
    needed = result + resized + activations
    if needed <= available:
        return
    if result + resized > available * 0.9:
        hint = "the result alone does not fit: use a smaller --scale or a smaller picture"
    elif not tile:
        hint = "use tiles (--tile 400, or smaller)"
    else:
        hint = f"use smaller tiles (e.g. --tile {max(32, tile // 2)})"
    raise ValueError(f"{width}x{height} at x{scale:g} needs about {needed / GB:.1f} GB (the result "
                     f"{(result + resized) / GB:.1f} GB, {'one tile' if tile else 'the untiled pass'}: "
                     f"{activations / GB:.1f} GB) and {available / GB:.1f} GB is available: {hint}")
