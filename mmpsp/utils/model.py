"""Reach the segmentor inside the wrappers a Runner puts around it."""
from mmengine.model import BaseTTAModel, is_model_wrapper
from torch import nn


def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare segmentor inside DDP-style wrappers and TTA models.

    Checkpoints, heads and data preprocessors belong to that segmentor,
    whatever the Runner wrapped it in.

    Args:
        model (nn.Module): A segmentor, possibly wrapped (more than once).

    Returns:
        nn.Module: The innermost model.
    """
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model
