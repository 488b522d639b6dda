"""Refuse a ``load_from`` or resumed checkpoint that does not fit the model."""
from typing import Optional, Sequence, Tuple

from mmengine.hooks import Hook

from mmpsp.engine.checks.checkpoint_check import (
    CheckpointMismatchError,
    class_names_fit,
    compare_state_dict,
    dataset_meta_from_checkpoint,
    refuse_or_log,
    saved_config_of,
    state_dict_of,
)
from mmpsp.registry import HOOKS
from mmpsp.utils.model import unwrap_model


@HOOKS.register_module()
class CheckpointCheckHook(Hook):
    """Check ``load_from`` against the model before the Runner loads it.

    mmengine calls ``after_load_checkpoint`` for ``load_from`` and for
    ``resume`` alike, before it loads the weights, the optimizer state and
    the schedulers, so a resumed run of another class count stops here
    with the keys and the fix, not at the optimizer's ``The size of
    tensor a (19) must match ...``.

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
        filename = str(getattr(runner, '_load_from', None) or '<checkpoint>')
        if not isinstance(checkpoint, dict):
            raise CheckpointMismatchError(
                f'checkpoint {filename} holds a '
                f'{type(checkpoint).__name__}, not a dict of weights; pass '
                'a .pth written by tools/train.py or mmseg')
        state_dict = state_dict_of(checkpoint, self.revise_keys)
        report = compare_state_dict(model, state_dict, filename)
        refuse_or_log(report, self.strict, self._fix(runner, filename))
        dataset_meta = dataset_meta_from_checkpoint(checkpoint)
        if dataset_meta is not None and class_names_fit(
                model, dataset_meta, filename, self.strict):
            checkpoint.setdefault('meta', {})['dataset_meta'] = dataset_meta
            model.dataset_meta = dataset_meta

    def _fix(self, runner, filename: str) -> Optional[str]:
        """Advice for a resume or a fine-tuning run; None for testing."""
        if not self.strict or getattr(runner, '_train_loop', None) is None:
            return None
        option = 'custom_hooks.N.strict=False'
        hooks = (getattr(runner, 'cfg', None) or {}).get('custom_hooks')
        for index, hook in enumerate(hooks or []):
            if str(hook.get('type', '')).endswith('CheckpointCheckHook'):
                option = f'custom_hooks.{index}.strict=False'
        if getattr(runner, '_resume', False):
            saved = saved_config_of(filename)
            return (
                '--resume continues a run with the model it was trained '
                'with: resume with that run\'s config'
                + (f' ({saved})' if saved else '') + '. To train this '
                'model from those weights instead, start a new run in '
                f'another --work-dir with --cfg-options load_from={filename}'
                f' {option} (loads the weights that fit). Nothing was '
                'loaded and no checkpoint was changed.')
        return (f'To fine-tune from it (load only the weights that fit), '
                f'pass --cfg-options {option}.')
