"""Model modules: shapes, missing-modality handling, determinism; preprocessing round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import features
from demo.synthetic_table import generate_table
from training.data import columns_from_spec
from training.families.networks import build_net
from training.families.nn.fusion import FusionConfig, LateFusionNet
from training.families.nn.transformer import MultiHeadTransformer, TransformerConfig
from training.preprocess import NetworkPreprocessor

INDEX = ((0, 1, 2), (3, 4), (5, 6, 7, 8))  # meta, visual, audio (positions in x)


def _inputs(b: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 9, generator=g), torch.ones(b, 3)


@pytest.mark.parametrize("net", [
    LateFusionNet(FusionConfig(INDEX, n_targets=6, tower_hidden=8, tower_dim=4, fusion_hidden=8, dropout=0.0)),
    MultiHeadTransformer(TransformerConfig(INDEX, always_present=(0,), n_targets=6, d_model=8, n_heads=2,
                                           n_layers=1, ff_dim=16, dropout=0.0)),
])
def test_shapes_and_missing_modality_is_ignored(net: torch.nn.Module) -> None:
    net.eval()
    x, present = _inputs()
    mean, log_var = net(x, present)
    assert mean.shape == (5, 6)
    assert log_var is None or log_var.shape == (5, 6)
    present[:, 2] = 0  # audio missing: its values must not matter
    x2 = x.clone()
    x2[:, 5:9] = torch.randn(5, 4) * 100
    with torch.no_grad():
        a, b = net(x, present)[0], net(x2, present)[0]
    torch.testing.assert_close(a, b)
    # ...but they do matter when the modality is present
    present[:, 2] = 1
    with torch.no_grad():
        assert not torch.allclose(net(x, present)[0], net(x2, present)[0])


def test_transformer_meta_token_is_never_masked() -> None:
    net = MultiHeadTransformer(TransformerConfig(INDEX, always_present=(0,), d_model=8, n_heads=2, n_layers=1,
                                                 ff_dim=16, dropout=0.0)).eval()
    x, _ = _inputs()
    nothing = torch.zeros(5, 3)  # even with every modality flagged missing, age/meta features are used
    x2 = x.clone()
    x2[:, 0:3] += 5.0
    with torch.no_grad():
        out1, lv1 = net(x, nothing)
        out2, _ = net(x2, nothing)
    assert torch.isfinite(out1).all() and torch.isfinite(lv1).all()
    assert not torch.allclose(out1, out2)
    assert (lv1 >= net.cfg.min_log_var).all() and (lv1 <= net.cfg.max_log_var).all()


def test_same_seed_same_weights() -> None:
    cfg = {"modality_index": [list(i) for i in INDEX], "n_targets": 6, "tower_hidden": 8, "tower_dim": 4,
           "fusion_hidden": 8, "dropout": 0.1}
    torch.manual_seed(3)
    a = build_net("late_fusion", cfg)
    torch.manual_seed(3)
    b = build_net("late_fusion", cfg)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb)


def test_preprocessor_imputes_with_features_imputer_and_round_trips() -> None:
    spec = features.load_spec()
    cols = columns_from_spec(spec)
    df = generate_table(400, spec, seed=4)
    pre = NetworkPreprocessor.fit(spec, cols, df)
    x, present = pre.transform(df)
    assert x.shape == (400, len(cols.features)) and np.isfinite(x).all()
    assert present.shape == (400, len(pre.modalities)) and pre.modalities[0] == "meta"
    audio = pre.modalities.index("audio")
    # rows with no audio (every audio value but has_audio missing) are flagged... has_audio is read (0), so
    # the modality counts as present; a row with *every* audio column missing is not
    df2 = df.head(3).copy()
    for c in cols.modality_values["audio"]:
        df2[c] = np.nan
    assert (pre.transform(df2)[1][:, audio] == 0).all()
    again = NetworkPreprocessor.from_dict(pre.to_dict())
    np.testing.assert_array_equal(again.transform(df)[0], x)
    assert pre.imputer.to_dict()["kind"] == "trendflow.features.Imputer"
