"""Helpers shared by the model tests."""
import torch
from torch.nn.modules.batchnorm import _BatchNorm


def randomize_norms(model: torch.nn.Module,
                    seed: int = 0) -> torch.nn.Module:
    """Give every batch norm non-trivial affine values and statistics.

    The default init (weight 1, bias 0, mean 0, var 1) would hide a norm
    applied in the wrong place or with the wrong statistics. Returns
    ``model``, changed in place.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
    return model
