"""Everything about processes: init/cleanup, rank helpers and model wrapping (DDP or FSDP2).

The training loop calls these helpers without ever asking which rank it is: at world size 1 they are
no-ops and `wrap` returns the model unchanged, so the same command runs under `python` and `torchrun`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from sinklab.errors import SinklabError


@dataclass
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    mode: str = "none"  # none | ddp | fsdp, set by wrap()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_reduce_mean(self, value: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            value = value.clone()
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
            value /= self.world_size
        return value

    def broadcast_object(self, obj: object) -> object:
        """Rank 0's value on every rank (used for errors found while preparing, so all ranks stop)."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (filling caches), then the others run it and find the cache."""
        if not self.is_main:
            self.barrier()
        try:
            yield
        finally:
            # Also on an error, so the other ranks are released, run the block and meet the same error.
            if self.is_main:
                self.barrier()

    def wrap(self, model: nn.Module, mode: str) -> nn.Module:
        """DDP, or FSDP2 `fully_shard` on every block and then the root; unchanged at world size 1."""
        if not self.distributed:
            return model
        self.mode = mode
        if mode == "ddp":
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            return DistributedDataParallel(model, device_ids=ids)
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(self.device.type, (self.world_size,))
        for block in blocks_of(model):
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model

    def unwrap(self, model: nn.Module) -> nn.Module:
        """The module whose forward takes `record=`: DDP's inner module; FSDP2 shards in place."""
        inner = getattr(model, "_orig_mod", model)  # torch.compile
        return inner.module if hasattr(inner, "module") and self.mode == "ddp" else inner

    @contextlib.contextmanager
    def gradient_sync(self, model: nn.Module, enabled: bool) -> Iterator[None]:
        """Skip the gradient all-reduce on all but the last micro-batch of an accumulation."""
        inner = getattr(model, "_orig_mod", model)
        if self.mode == "ddp" and not enabled:
            with inner.no_sync():
                yield
            return
        if self.mode == "fsdp":
            inner.set_requires_gradient_sync(enabled)
        yield

    def reshard(self, model: nn.Module) -> None:
        """After a forward without backward (evaluation): FSDP2 keeps the root unsharded after its forward,
        which would leave parameters that the optimizer and state-dict helpers do not know."""
        if self.mode != "fsdp":
            return
        from torch.distributed.fsdp import FSDPModule

        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.reshard()

    def cleanup(self) -> None:
        if dist.is_available() and dist.is_initialized():
            # Without this barrier FSDP2 on gloo sometimes aborts at exit.
            dist.barrier()
            dist.destroy_process_group()


def blocks_of(model: nn.Module) -> list[nn.Module]:
    """The repeated blocks to shard one by one: the modules of the model's top-level ModuleList."""
    for child in model.children():
        if isinstance(child, nn.ModuleList):
            return list(child)
    return []


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    if preference == "cuda" and not torch.cuda.is_available():
        raise SinklabError("train.device=cuda but CUDA is not available; use train.device=cpu or auto")
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def setup(device_preference: str = "auto") -> DistEnv:
    """Read torchrun's environment; start the process group (NCCL on GPU, gloo on CPU) when world > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_preference, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistEnv(rank=rank, world_size=world, local_rank=local_rank, device=device)
