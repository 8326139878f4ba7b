"""Data-parallel training under ``torchrun``, and the backward/step every loss goes through.

Gradients are averaged with one flattened all-reduce per network after each backward, rather
than through ``DistributedDataParallel``'s reducer: a GAN step runs D twice per iteration and
R1 needs a double backward, two things DDP's bucketed hooks do not support. Outside torchrun
(``WORLD_SIZE`` unset or 1) every function here is a no-op around plain PyTorch.
"""
from __future__ import annotations

import contextlib
import os
import warnings

import torch
import torch.distributed as tdist
from torch import nn

from gan.precision import cpu_has_bf16

_state: dict[str, object] = {}


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init() -> tuple[int, torch.device]:
    """Join the process group if launched by torchrun; returns (rank, device). Idempotent."""
    if "rank" not in _state:
        rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
        if world_size() > 1 and not tdist.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)
            tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        _state.update(rank=rank, device=device)
    return int(_state["rank"]), _state["device"]  # type: ignore[return-value]


def autocast(enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast when asked, on CUDA or on a CPU with native bf16 (no loss scaling is
    needed for bf16); fp32 elsewhere."""
    _, device = init()
    if not enabled:
        return contextlib.nullcontext()
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):  # native only (a T4 emulates it)
            return torch.autocast("cuda", dtype=torch.bfloat16)
        warnings.warn("this GPU has no bf16: training in fp32", stacklevel=2)
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=torch.bfloat16) if cpu_has_bf16() else contextlib.nullcontext()


def sync_grads(net: nn.Module) -> None:
    """Average the gradients of ``net`` over all ranks (one flattened all-reduce)."""
    if world_size() <= 1:
        return
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    tdist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def backward_step(loss: torch.Tensor, net: nn.Module, opt: torch.optim.Optimizer) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    sync_grads(net)
    opt.step()


def broadcast_params(nets: dict[str, nn.Module]) -> None:
    """Give every rank rank 0's parameters and buffers."""
    if world_size() <= 1:
        return
    with torch.no_grad():
        for net in nets.values():
            for t in list(net.parameters()) + list(net.buffers()):
                tdist.broadcast(t.data, 0)


def barrier() -> None:
    if world_size() > 1:
        tdist.barrier()


def assert_in_sync(nets: dict[str, nn.Module]) -> None:
    """Check that every rank holds the same weights (they would drift if a gradient were
    left out of the all-reduce); raises RuntimeError naming the network that differs."""
    if world_size() <= 1:
        return
    for name, net in nets.items():
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1).double() for p in net.parameters()])
        fingerprint = torch.stack([flat.sum(), (flat * torch.arange(flat.numel(), device=flat.device)).sum()])
        gathered = [torch.zeros_like(fingerprint) for _ in range(world_size())]
        tdist.all_gather(gathered, fingerprint)
        if any(not torch.equal(g, gathered[0]) for g in gathered):
            raise RuntimeError(f"ranks hold different {name} weights after training")
