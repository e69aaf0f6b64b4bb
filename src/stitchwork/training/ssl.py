"""Self-supervised donors: SimCLR-style contrastive training, then a linear probe.

A recipe with an ``ssl`` block trains a model in two phases. First every stage but the
classifier head (the *encoder*) learns from two augmented views of each batch through a
projection head with the NT-Xent loss (Chen et al. 2020), using the recipe's optimizer,
schedule, epochs and batch size; labels are never read. Then the encoder is frozen and
only the head is fitted by cross-entropy (the linear probe, ``probe_epochs`` of Adam at
``probe_lr``). Augmentations are tensor ops drawn from one generator seeded by the job's
seed, so they work on any embedded data (8x8 digits, upscaled digits, 1-D mnist1d) and a
seed gives the same donor every time. The contrastive phase is preemption-safe like
supervised training: its whole state is saved at every epoch end (and the job stops at the
next batch on SIGUSR2), and a rerun resumes at that epoch, computing exactly what an
uninterrupted run would.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import ClassificationData
from ..utils.modules import model_device
from .recipe import TrainRecipe, build_checked, build_optimizer, build_scheduler
from .resume import EpochCheckpoint


@dataclass(frozen=True)
class SSLOptions:
    """Contrastive pre-training settings (``recipe.ssl``); all of them enter the zoo key.

    ``noise`` is the std of additive Gaussian noise, ``shift`` the largest translation in
    pixels (samples for 1-D data, zero-filled), ``scale`` the half-width of a random
    intensity factor ``1 ± scale``, ``drop`` the probability of zeroing an input element.
    """

    temperature: float = 0.5
    proj_hidden: int = 64
    proj_dim: int = 32
    noise: float = 0.1
    shift: int = 1
    scale: float = 0.2
    drop: float = 0.1
    probe_epochs: int = 20
    probe_lr: float = 1e-2

    def __post_init__(self):
        for name in ("temperature", "proj_hidden", "proj_dim", "probe_epochs", "probe_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"recipe.ssl.{name} must be positive, got {getattr(self, name)!r}")
        for name in ("noise", "shift", "scale"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"recipe.ssl.{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.drop < 1:
            raise ValueError(f"recipe.ssl.drop must be in [0, 1), got {self.drop!r}")

    @classmethod
    def from_dict(cls, values: dict) -> SSLOptions:
        """Build from a mapping, rejecting unknown keys by name."""
        return build_checked(cls, values, "recipe.ssl")

    def to_dict(self) -> dict:
        return asdict(self)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent loss of paired embeddings ``(n, d)``: each view's positive is its partner.

    Cosine similarities over all ``2n`` embeddings divided by ``temperature``; for anchor
    ``i`` the loss is the cross-entropy of its partner among the other ``2n - 1``; mean over
    the ``2n`` anchors (SimCLR, Chen et al. 2020, eq. 1).
    """
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    n = z1.shape[0]
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, partner)


def augment(x: torch.Tensor, opts: SSLOptions, generator: torch.Generator) -> torch.Tensor:
    """One random view of a batch ``(n, ...)``: shift, intensity scale, dropout, noise."""
    n, spatial = x.shape[0], x.shape[2:] if x.dim() > 2 else x.shape[1:]
    if opts.shift > 0:
        x = _shift(x, len(spatial), opts.shift, generator)
    factor = 1 + opts.scale * (2 * torch.rand(n, generator=generator) - 1)
    x = x * factor.view(n, *[1] * (x.dim() - 1)).to(x)
    if opts.drop > 0:
        x = x * (torch.rand(x.shape, generator=generator) >= opts.drop).to(x)
    return x + opts.noise * torch.randn(x.shape, generator=generator).to(x)


def _shift(x: torch.Tensor, dims: int, most: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each example by up to ``most`` along each of its last ``dims`` axes, zero-filled."""
    offsets = torch.randint(-most, most + 1, (x.shape[0], dims), generator=generator)
    pad = [most] * (2 * dims)
    padded = F.pad(x, pad)
    out = torch.empty_like(x)
    for i, off in enumerate(offsets.tolist()):
        view = padded[i]
        for axis, o in enumerate(off):
            dim = view.dim() - dims + axis
            view = view.narrow(dim, most + o, x.shape[dim + 1])
        out[i] = view
    return out


def _encoder_and_head(net: nn.Module) -> tuple[nn.Module, nn.Module]:
    """Every stage but the last (the encoder), and the last stage (the classifier head)."""
    stages = getattr(net, "stages", None)
    if not isinstance(stages, nn.ModuleDict) or len(stages) < 2:
        raise ValueError(
            f"recipe.ssl needs a model made of named stages with a classifier head last "
            f"(every built-in model); {type(net).__name__} has none"
        )
    modules = list(stages.values())
    return nn.Sequential(*modules[:-1]), modules[-1]


def _projection(encoder: nn.Module, data: ClassificationData, opts: SSLOptions) -> nn.Module:
    """The SimCLR projection head: Linear -> ReLU -> Linear on the flattened features."""
    x, _ = data.train_set[0]
    with torch.no_grad():
        width = encoder.eval()(x.unsqueeze(0).to(model_device(encoder))).flatten(1).shape[1]
    return nn.Sequential(
        nn.Flatten(), nn.Linear(width, opts.proj_hidden), nn.ReLU(), nn.Linear(opts.proj_hidden, opts.proj_dim)
    )


def _train_tensors(data: ClassificationData) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole training split as ``(inputs, labels)`` tensors (embedded data is small)."""
    xs = torch.stack([data.train_set[i][0] for i in range(len(data.train_set))])
    ys = torch.as_tensor([int(data.train_set[i][1]) for i in range(len(data.train_set))])
    return xs, ys


def _batches(data: ClassificationData, batch_size: int, generator: torch.Generator):
    """Shuffled training batches drawn with ``generator`` (the last, short one kept if > 1)."""
    xs, ys = _train_tensors(data)
    order = torch.randperm(len(xs), generator=generator)
    for start in range(0, len(xs), batch_size):
        idx = order[start : start + batch_size]
        if len(idx) > 1:
            yield xs[idx], ys[idx]


def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> float:
    """One optimizer step on ``loss``; returns its value."""
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def pretrain(net: nn.Module, data: ClassificationData, recipe: TrainRecipe, seed: int,
             checkpoint: EpochCheckpoint | None = None) -> list[float]:  # fmt: skip
    """Contrastive phase: train the encoder of ``net`` in place; returns the mean loss per epoch.

    With ``checkpoint``, resumes from the state it holds and saves the state at every epoch end.
    """
    opts = SSLOptions.from_dict(recipe.ssl)
    encoder, _ = _encoder_and_head(net)
    device = model_device(net)
    generator = torch.Generator().manual_seed(seed)
    proj = _projection(encoder, data, opts).to(device)
    optimizer = build_optimizer([*encoder.parameters(), *proj.parameters()], recipe)
    steps = max(1, -(-len(data.train_set) // recipe.batch_size))
    scheduler = build_scheduler(optimizer, recipe, steps)
    parts = {"encoder": encoder, "proj": proj, "optimizer": optimizer, "scheduler": scheduler}
    curve: list[float] = []
    state = checkpoint.load(device) if checkpoint is not None else None
    if state is not None:
        for name, part in parts.items():
            part.load_state_dict(state[name])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        curve = list(state["curve"])
    for _ in range(len(curve), recipe.epochs):
        encoder.train(), proj.train()
        losses = []
        for x, _ in _batches(data, recipe.batch_size, generator):
            if checkpoint is not None:
                checkpoint.stop_if_signalled()
            v1, v2 = (augment(x, opts, generator).to(device) for _ in range(2))
            loss = nt_xent(proj(encoder(v1)), proj(encoder(v2)), opts.temperature)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"NT-Xent loss is {loss.item()}; lower recipe.lr")
            losses.append(_step(optimizer, loss))
            scheduler.step()
        curve.append(sum(losses) / len(losses))
        if checkpoint is not None:
            checkpoint.save({**{name: part.state_dict() for name, part in parts.items()}, "epoch": len(curve),
                             "curve": curve, "generator": generator.get_state(), "torch_rng": torch.get_rng_state()})  # fmt: skip
    return curve


def linear_probe(net: nn.Module, data: ClassificationData, recipe: TrainRecipe, seed: int) -> list[float]:
    """Fit only the head of ``net`` on frozen encoder features; returns the loss per epoch."""
    opts = SSLOptions.from_dict(recipe.ssl)
    encoder, head = _encoder_and_head(net)
    device = model_device(net)
    generator = torch.Generator().manual_seed(seed + 1)
    encoder.eval()
    xs, ys = _train_tensors(data)
    with torch.no_grad():
        feats = torch.cat([encoder(x.to(device)) for x in xs.split(recipe.batch_size)])
    labels = ys.to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=opts.probe_lr)
    curve = []
    for _ in range(opts.probe_epochs):
        order = torch.randperm(len(feats), generator=generator).to(device)
        losses = []
        for start in range(0, len(feats), recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            loss = F.cross_entropy(head(feats[idx]), labels[idx])
            losses.append(_step(optimizer, loss))
        curve.append(sum(losses) / len(losses))
    return curve


#: Trainer options an SSL fit accepts (it runs its own loop on the model's device): those
#: that only show or place training, and the default values of the rest.
SSL_TRAINER_OK = {"accelerator": None, "enable_progress_bar": None, "log_every_n_steps": None,
                  "enable_model_summary": None, "enable_checkpointing": None, "default_root_dir": None,
                  "logger": None, "devices": (1,), "deterministic": (None, False)}  # fmt: skip


def check_ssl_trainer_options(options: dict | None) -> None:
    """Refuse trainer options that the SSL loop would ignore but that would enter the zoo key."""
    for key, value in (options or {}).items():
        allowed = SSL_TRAINER_OK.get(key, ())
        if key == "devices" and isinstance(value, (list, tuple)):
            value = len(value)
        if allowed is not None and value not in allowed:
            raise ValueError(
                f"trainer.{key}={value!r} is not supported with recipe.ssl: self-supervised donors "
                f"train in their own loop on one device; drop it (or use a supervised recipe)"
            )


def fit_ssl(
    net: nn.Module, data: ClassificationData, recipe: TrainRecipe, seed: int = 0,
    trainer_options: dict | None = None, checkpoint_dir: str | Path | None = None,
    corrupt_dir: str | Path | None = None,
) -> dict:
    """Contrastive pre-training, then the linear probe; split metrics as :func:`fit_classifier`.

    With ``checkpoint_dir`` the contrastive phase is preemption-safe (see
    :class:`~stitchwork.training.resume.EpochCheckpoint`); ``resumed`` says whether it resumed.
    """
    from .fit import split_metrics

    check_ssl_trainer_options(trainer_options)
    torch.manual_seed(seed)
    data.setup("fit")
    start = time.perf_counter()
    checkpoint = None if checkpoint_dir is None else EpochCheckpoint(checkpoint_dir, "ssl_epoch.pt", corrupt_dir=corrupt_dir)
    if checkpoint is None:
        ssl_curve = pretrain(net, data, recipe, seed)
    else:
        with checkpoint:
            ssl_curve = pretrain(net, data, recipe, seed, checkpoint)
    probe_curve = linear_probe(net, data, recipe, seed)
    net.eval()
    if checkpoint is not None:
        checkpoint.discard()
    metrics = {"wall_time_s": time.perf_counter() - start, "resumed": checkpoint is not None and checkpoint.resumed,
               "ssl_loss": ssl_curve, "probe_loss": probe_curve}  # fmt: skip
    metrics.update(split_metrics(net, data))
    return metrics
