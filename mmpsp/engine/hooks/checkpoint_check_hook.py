"""Refuse a ``load_from`` checkpoint that does not fit the model."""
from typing import Sequence, Tuple

from mmengine.hooks import Hook

from mmpsp.engine.checks.checkpoint_check import (
    class_names_fit,
    compare_state_dict,
    dataset_meta_from_checkpoint,
    refuse_or_log,
    state_dict_of,
)
from mmpsp.registry import HOOKS
from mmpsp.utils.model import unwrap_model


@HOOKS.register_module()
class CheckpointCheckHook(Hook):
    """Check ``load_from`` against the model before the Runner loads it.

    ``Runner.load_checkpoint`` loads with ``strict=False`` and only logs what
    did not fit. Registered for testing or inference, this hook raises
    :class:`CheckpointMismatchError` (keys, shapes, file and fix) instead,
    and rewrites an mmseg 0.x meta (``CLASSES``/``PALETTE``) to
    ``meta['dataset_meta']`` so that the model gets its class names.

    Args:
        strict (bool): Raise on a partial fit; with False only log it.
            Defaults to True.
        revise_keys (Sequence[tuple[str, str]]): As for
            :func:`load_checkpoint_checked`.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 strict: bool = True,
                 revise_keys: Sequence[Tuple[str, str]] = ((r'^module\.',
                                                            ''), )) -> None:
        self.strict = strict
        self.revise_keys = [tuple(pair) for pair in revise_keys]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Validate ``checkpoint`` (as read by the Runner) in place.

        Args:
            runner (Runner): The runner loading the checkpoint.
            checkpoint (dict): The loaded checkpoint.
        """
        model = unwrap_model(runner.model)
        filename = str(runner._load_from or '<checkpoint>')
        state_dict = state_dict_of(checkpoint, self.revise_keys)
        report = compare_state_dict(model, state_dict, filename)
        refuse_or_log(report, self.strict)
        dataset_meta = dataset_meta_from_checkpoint(checkpoint)
        if dataset_meta is not None and class_names_fit(
                model, dataset_meta, filename, self.strict):
            checkpoint.setdefault('meta', {})['dataset_meta'] = dataset_meta
            model.dataset_meta = dataset_meta
