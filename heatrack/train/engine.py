"""The training loop shared by the detector and the embedder.

It owns what every run needs and nothing model-specific: devices (CPU, CUDA, mixed precision on
CUDA), DistributedDataParallel when launched by ``torchrun`` (gloo on CPU, nccl on GPUs), a
progress bar, CSV and TensorBoard logs (``log.csv`` per step, ``epochs.csv`` per epoch with the
validation metrics), a loss-curve PNG per epoch, atomic checkpoints every
``checkpoint_every`` steps and at each epoch end, and ``resume`` from the last one.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from heatrack.models.weights import load_checkpoint, plain_data

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    out_dir: str = "runs/detector"
    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 1e-4
    #: Linear warm-up steps, then cosine decay to ``lr * final_lr_fraction``.
    warmup_steps: int = 100
    final_lr_fraction: float = 0.05
    #: Save ``last.pt`` every this many optimiser steps (and at every epoch end).
    checkpoint_every: int = 200
    #: Mixed precision (bfloat16/float16 autocast) when on CUDA.
    amp: bool = True
    grad_clip: float = 10.0
    #: Learning rate of the model's pretrained ``backbone`` relative to the rest. Below 1 the
    #: ImageNet features drift less towards the few cameras of a small training set.
    backbone_lr_scale: float = 1.0
    seed: int = 0


def distributed_context() -> tuple[int, int, int]:
    """(rank, local_rank, world_size); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return rank, local, world


def save_atomic(obj, path: Path) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Engine:
    """Run ``epochs`` over ``loader``; ``step_fn(model, batch) -> (loss, {name: value})``.

    ``on_epoch_end(engine, epoch)`` runs on rank 0 after each epoch (validation, pictures).
    """

    def __init__(
        self,
        model: nn.Module,
        loader_fn: Callable[[int], Iterable],
        steps_per_epoch: int,
        step_fn: Callable,
        config: EngineConfig,
        on_epoch_end: Callable | None = None,
        extra_state: dict | None = None,
    ) -> None:
        self.config = config
        self.rank, local, self.world = distributed_context()
        if torch.cuda.is_available():
            self.device = torch.device("cuda", local)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
        torch.manual_seed(config.seed + self.rank)
        self.model = model.to(self.device)
        self.train_model = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [{"params": params, "scale": 1.0}]
        backbone = getattr(self.model, "backbone", None)
        if backbone is not None and config.backbone_lr_scale != 1.0:
            pretrained = {id(p) for p in backbone.parameters()}
            groups = [
                {
                    "params": [p for p in params if id(p) in pretrained],
                    "scale": config.backbone_lr_scale,
                },
                {"params": [p for p in params if id(p) not in pretrained], "scale": 1.0},
            ]
        self.optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
        self.loader_fn = loader_fn
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = max(1, steps_per_epoch * config.epochs)
        self.step_fn = step_fn
        self.on_epoch_end = on_epoch_end
        self.extra_state = extra_state or {}
        self.out_dir = Path(config.out_dir)
        self.step = 0
        self.epoch = 0
        self.history: list[dict] = []
        self.use_amp = config.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def lr_at(self, step: int) -> float:
        c = self.config
        if step < c.warmup_steps:
            return c.lr * (step + 1) / c.warmup_steps
        t = min(1.0, (step - c.warmup_steps) / max(1, self.total_steps - c.warmup_steps))
        low = c.lr * c.final_lr_fraction
        return low + (c.lr - low) * 0.5 * (1 + math.cos(math.pi * t))

    def checkpoint_path(self) -> Path:
        return self.out_dir / "last.pt"

    def save(self) -> None:
        if not self.is_main:
            return
        save_atomic(
            plain_data(
                {
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "scaler": self.scaler.state_dict(),
                    "step": self.step,
                    "epoch": self.epoch,
                    "history": self.history,
                    "extra": self.extra_state,
                    "rng": torch.get_rng_state(),
                }
            ),
            self.checkpoint_path(),
        )

    def resume(self, path: str | os.PathLike | None = None) -> bool:
        """Load model, optimiser, counters and history from ``path`` (default: last.pt)."""
        path = Path(path) if path else self.checkpoint_path()
        if not path.is_file():
            return False
        state = load_checkpoint(path, self.device)
        self._load_model(path, state["model"], reshape=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.history = state.get("history", [])
        torch.set_rng_state(state["rng"])
        return True

    def load_weights(self, path: str | os.PathLike) -> None:
        """Start from another run's model weights (fine-tuning, a self-training round): the
        optimiser, schedule and counters start afresh."""
        self._load_model(path, load_checkpoint(path, self.device)["model"], reshape=True)

    def _load_model(self, path, weights: dict, reshape: bool) -> None:
        """Model weights from ``path``: tensors this model lacks are an error; parts new in
        this model start fresh, and with ``reshape`` so do tensors of another shape (a head
        sized for other data, such as an identity classifier over other people)."""
        if reshape:
            own = self.model.state_dict()
            resized = [k for k, v in weights.items() if k in own and own[k].shape != v.shape]
            if resized:
                log.info("%s: %d tensors of another shape start fresh (%s)", path, len(resized),
                         ", ".join(resized[:3]))  # fmt: skip
                weights = {k: v for k, v in weights.items() if k not in resized}
        missing, unexpected = self.model.load_state_dict(weights, strict=False)
        if unexpected:
            raise ValueError(f"{path}: weights for parts this model lacks: {unexpected[:5]}")
        if missing:  # a part new in this model (a head added for fine-tuning) starts fresh
            log.info("%s: %d tensors start fresh (%s, ...)", path, len(missing), missing[0])

    def fit(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        writer = self._tensorboard()
        log_file = self.out_dir / "log.csv"
        csv_file = open(log_file, "a", newline="") if self.is_main else None
        try:
            self._epochs(writer, csv_file, log_file)
        finally:
            if csv_file is not None:
                csv_file.close()
            if writer is not None:
                writer.close()

    def _epochs(self, writer, csv_file, log_file: Path) -> None:
        csv_writer = None
        while self.epoch < self.config.epochs:
            self.model.train()
            start_step = self.step - self.epoch * self.steps_per_epoch
            loader = self.loader_fn(self.epoch)
            bar = tqdm(
                total=self.steps_per_epoch,
                initial=start_step,
                disable=not self.is_main,
                desc=f"epoch {self.epoch + 1}/{self.config.epochs}",
                dynamic_ncols=True,
                mininterval=0.2 if sys.stderr.isatty() else 30.0,  # a log: a line per 30 s
            )
            sums: dict[str, float] = {}
            count = 0
            for i, batch in enumerate(loader):
                if i < start_step:
                    continue  # resuming mid-epoch: skip the batches already seen
                if i >= self.steps_per_epoch:
                    break
                parts = self._train_step(batch)
                count += 1
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + v
                bar.update(1)
                bar.set_postfix({k: f"{v:.3f}" for k, v in parts.items()}, refresh=False)
                if self.is_main:
                    row = {
                        "step": self.step,
                        "epoch": self.epoch,
                        "lr": self.lr_at(self.step - 1),
                        "time": time.time(),
                        **parts,
                    }
                    if csv_writer is None:
                        csv_writer = csv.DictWriter(
                            csv_file, fieldnames=list(row), extrasaction="ignore"
                        )
                        if log_file.stat().st_size == 0:
                            csv_writer.writeheader()
                    csv_writer.writerow(row)
                    csv_file.flush()
                    if writer is not None:
                        for k, v in parts.items():
                            writer.add_scalar(f"train/{k}", v, self.step)
                if self.step % self.config.checkpoint_every == 0:
                    self.save()
            bar.close()
            self.epoch += 1
            means = {k: v / max(count, 1) for k, v in sums.items()}
            record = {"epoch": self.epoch, **means}
            if self.is_main and self.on_epoch_end is not None:
                record.update(self.on_epoch_end(self, self.epoch) or {})
            self.history.append(record)
            if self.is_main:
                if writer is not None:
                    for k, v in record.items():
                        if k != "epoch":
                            writer.add_scalar(f"epoch/{k}", v, self.epoch)
                self._plot_history()
                self._write_epochs()
                tqdm.write(
                    f"epoch {self.epoch}: "
                    + ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "epoch")
                )
            self.save()

    def _write_epochs(self) -> None:
        """``epochs.csv``: one row per epoch (train means and validation metrics)."""
        keys = ["epoch"] + sorted({k for r in self.history for k in r if k != "epoch"})
        rows = [",".join(keys)]
        rows += [",".join(f"{r[k]:.6g}" if k in r else "" for k in keys) for r in self.history]
        tmp = self.out_dir / ".epochs.csv.tmp"
        tmp.write_text("\n".join(rows) + "\n")
        os.replace(tmp, self.out_dir / "epochs.csv")

    def _train_step(self, batch) -> dict[str, float]:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step) * group.get("scale", 1.0)
        with torch.autocast(self.device.type, enabled=self.use_amp):
            loss, parts = self.step_fn(self.train_model, batch, self.device)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        return {"loss": float(loss.detach()), **{k: float(v) for k, v in parts.items()}}

    def _tensorboard(self):
        if not self.is_main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(str(self.out_dir / "tensorboard"))

    def _plot_history(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        keys = sorted({k for r in self.history for k in r if k != "epoch"})
        fig, ax = plt.subplots(figsize=(7, 4))
        for k in keys:
            xs = [r["epoch"] for r in self.history if k in r]
            ys = [r[k] for r in self.history if k in r]
            ax.plot(xs, ys, marker="o", label=k)
        ax.set_xlabel("epoch")
        ax.set_yscale(
            "log"
            if all(v > 0 for r in self.history for k, v in r.items() if k != "epoch")
            else "linear"
        )
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        tmp = self.out_dir / ".loss.png"
        fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
        os.replace(tmp, self.out_dir / "loss.png")
