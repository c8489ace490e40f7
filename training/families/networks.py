"""Network families: v1 late fusion and v2 multi-head transformer, trained with PyTorch Lightning.

Both train on standardised inputs (:class:`training.preprocess.NetworkPreprocessor`) and standardised targets
with a masked loss (missing targets contribute nothing); early stopping on the validation loss keeps the best
epoch's weights. Predictions are mapped back to the spec's log1p scale.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from training.data import Columns
from training.intervals import BaseOutput
from training.losses import beta_nll, gaussian_nll, masked_huber, masked_mean, masked_mse, target_mask
from training.preprocess import NetworkPreprocessor


def build_net(kind: str, net_cfg: dict[str, Any]) -> torch.nn.Module:
    """Instantiate the module of ``kind`` (``late_fusion`` | ``transformer``) from its config dict."""
    if kind == "late_fusion":
        from training.families.nn.fusion import FusionConfig, LateFusionNet

        cfg = dict(net_cfg, modality_index=tuple(tuple(x) for x in net_cfg["modality_index"]))
        return LateFusionNet(FusionConfig(**cfg))
    if kind == "transformer":
        from training.families.nn.transformer import MultiHeadTransformer, TransformerConfig

        cfg = dict(net_cfg, modality_index=tuple(tuple(x) for x in net_cfg["modality_index"]),
                   always_present=tuple(net_cfg["always_present"]))
        return MultiHeadTransformer(TransformerConfig(**cfg))
    raise ValueError(f"unknown network kind {kind!r}")


def net_config(mcfg: Any, pre: NetworkPreprocessor, n_targets: int) -> dict[str, Any]:
    """The architecture dataclass fields for the model section ``mcfg`` (JSON-able, saved with the model)."""
    index = [pre.modality_index[m] for m in pre.modalities]
    if mcfg.name == "late_fusion":
        return {"modality_index": index, "n_targets": n_targets, "tower_hidden": mcfg.tower_hidden,
                "tower_dim": mcfg.tower_dim, "fusion_hidden": mcfg.fusion_hidden, "dropout": mcfg.dropout}
    always = [pre.modalities.index("meta")] if "meta" in pre.modalities else [0]
    return {"modality_index": index, "always_present": always, "n_targets": n_targets, "d_model": mcfg.d_model,
            "n_heads": mcfg.n_heads, "n_layers": mcfg.n_layers, "ff_dim": mcfg.ff_dim, "dropout": mcfg.dropout,
            "min_log_var": mcfg.min_log_var, "max_log_var": mcfg.max_log_var}


def _lit_module(net: torch.nn.Module, mcfg: Any):
    import lightning as L

    class LitRegressor(L.LightningModule):
        """Wraps a network with its masked loss and optimiser. Batches are ``(x, present, y)``."""

        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def _loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            x, present, y = batch
            mean, log_var = self.net(x, present)
            if log_var is not None:
                return beta_nll(mean, log_var, y, beta=mcfg.beta)
            if mcfg.loss == "huber":
                return masked_huber(mean, y, delta=mcfg.huber_delta)
            return masked_mse(mean, y)

        def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
            loss = self._loss(batch)
            self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch[0]))
            return loss

        def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
            x, present, y = batch
            mean, log_var = self.net(x, present)
            y_f, ok = target_mask(y)
            n = len(x)
            self.log("val/loss", self._loss(batch), on_epoch=True, batch_size=n)
            # MAE (standardised scale, per-head normalised): the early-stopping criterion by default. The
            # beta-NLL's value is not a proper score (its variance weight is detached), so it cannot rank epochs.
            self.log("val/mae", masked_mean((mean - y_f).abs(), ok), on_epoch=True, prog_bar=True, batch_size=n)
            if log_var is not None:
                self.log("val/nll", gaussian_nll(mean, log_var, y), on_epoch=True, batch_size=n)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.AdamW(self.parameters(), lr=mcfg.lr, weight_decay=mcfg.weight_decay)

    return LitRegressor()


def _best_weights_callback(monitor: str):
    import lightning as L

    class BestWeights(L.Callback):
        """Keeps the state of the epoch with the lowest ``monitor`` in memory (no checkpoint files) and
        restores it at the end; records the per-epoch validation metrics for the run's history."""

        def __init__(self) -> None:
            self.best = float("inf")
            self.state: dict[str, torch.Tensor] | None = None
            self.best_epoch = -1
            self.history: list[dict[str, float]] = []

        def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if trainer.sanity_checking:
                return
            row = {"epoch": trainer.current_epoch}
            row.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")})
            self.history.append(row)
            val = row.get(monitor, float("nan"))
            if val < self.best:
                self.best, self.best_epoch = val, trainer.current_epoch
                self.state = copy.deepcopy(pl_module.net.state_dict())

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if self.history and self.history[-1]["epoch"] == trainer.current_epoch:
                self.history[-1]["train/loss"] = float(trainer.callback_metrics.get("train/loss", float("nan")))

        def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
            if self.state is not None:
                pl_module.net.load_state_dict(self.state)

    return BestWeights()


@dataclass
class NetworkCore:
    """A trained v1/v2 network with its preprocessing."""

    kind: str  # late_fusion | transformer
    net_cfg: dict[str, Any]
    pre: NetworkPreprocessor
    net: torch.nn.Module
    targets: list[str]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1

    @classmethod
    def fit(cls, spec: Any, cols: Columns, train: pd.DataFrame, val: pd.DataFrame, mcfg: Any, tcfg: Any,
            seed: int) -> NetworkCore:
        import lightning as L
        from lightning.pytorch.callbacks import EarlyStopping

        torch.set_num_threads(tcfg.num_threads)
        L.seed_everything(seed, workers=True, verbose=False)
        pre = NetworkPreprocessor.fit(spec, cols, train)
        cfg = net_config(mcfg, pre, len(cols.targets))
        net = build_net(mcfg.name, cfg)
        lit = _lit_module(net, mcfg)

        def loader(df: pd.DataFrame, shuffle: bool) -> torch.utils.data.DataLoader:
            x, p = pre.transform(df)
            y = pre.scale_targets(df[cols.targets].to_numpy(np.float64))
            ds = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(p), torch.from_numpy(y))
            gen = torch.Generator().manual_seed(seed)
            return torch.utils.data.DataLoader(ds, batch_size=tcfg.batch_size, shuffle=shuffle, generator=gen)

        best = _best_weights_callback(tcfg.monitor)
        trainer_kwargs: dict[str, Any] = dict(
            max_epochs=tcfg.max_epochs, accelerator=tcfg.accelerator, devices=tcfg.devices,
            precision=tcfg.precision, deterministic=tcfg.deterministic, logger=False,
            enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=tcfg.progress_bar,
            gradient_clip_val=tcfg.gradient_clip_val, num_sanity_val_steps=0,
            callbacks=[EarlyStopping(tcfg.monitor, patience=tcfg.patience, mode="min"), best],
        )
        if tcfg.limit_train_batches is not None:
            trainer_kwargs["limit_train_batches"] = tcfg.limit_train_batches
        for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
            logging.getLogger(name).setLevel(logging.WARNING)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
            warnings.filterwarnings("ignore", category=UserWarning, module=r"lightning.*")
            trainer = L.Trainer(**trainer_kwargs)
            trainer.fit(lit, loader(train, True), loader(val, False))
        net.eval()
        return cls(mcfg.name, cfg, pre, net, list(cols.targets), best.history, best.best_epoch)

    @torch.no_grad()
    def predict_base(self, raw: pd.DataFrame, batch_size: int = 8192) -> BaseOutput:
        self.net.eval()
        x, p = self.pre.transform(raw)
        means, sigmas = [], []
        for i in range(0, len(x), batch_size):
            mean, log_var = self.net(torch.from_numpy(x[i : i + batch_size]), torch.from_numpy(p[i : i + batch_size]))
            means.append(mean.double().numpy())
            if log_var is not None:
                sigmas.append(torch.exp(0.5 * log_var).double().numpy())
        mu = np.concatenate(means) if means else np.zeros((0, len(self.targets)))
        mu = mu * self.pre.y_std + self.pre.y_mean
        sigma = np.concatenate(sigmas) * self.pre.y_std if sigmas else None
        return BaseOutput(mu, sigma, None)

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.net.state_dict(), path / "net.pt")
        (path / "core.json").write_text(json.dumps({
            "kind": self.kind, "net_config": self.net_cfg, "preprocessor": self.pre.to_dict(),
            "targets": self.targets, "history": self.history, "best_epoch": self.best_epoch,
        }, indent=2))

    @classmethod
    def load(cls, path: Path) -> NetworkCore:
        meta = json.loads((path / "core.json").read_text())
        net = build_net(meta["kind"], meta["net_config"])
        net.load_state_dict(torch.load(path / "net.pt", map_location="cpu", weights_only=True))
        net.eval()
        return cls(meta["kind"], meta["net_config"], NetworkPreprocessor.from_dict(meta["preprocessor"]), net,
                   meta["targets"], meta.get("history", []), meta.get("best_epoch", -1))


def describe(core: NetworkCore) -> dict[str, Any]:
    """Small summary for logging: parameter count, best epoch."""
    return {"n_params": int(sum(p.numel() for p in core.net.parameters())), "best_epoch": core.best_epoch,
            "net_config": {k: v for k, v in core.net_cfg.items() if k != "modality_index"}}


__all__ = ["NetworkCore", "build_net", "describe", "net_config"]
