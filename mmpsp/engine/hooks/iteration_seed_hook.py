"""Make the random stream of a training iteration independent of restarts.

mmengine resumes the weights, optimizer, schedulers and iteration count, and
replays the data loader up to the resumed iteration, which also replays the
numpy/python random draws of the data transforms. It does not restore
torch's global generator, which dropout draws from (PSPHead and FCNHead both
use dropout): after a resume the dropout masks differ from those of an
uninterrupted run, and so do the final weights.

Saving the generator in the checkpoint does not work across processes:
mmengine writes checkpoints on rank 0 only, so the other ranks' generators
would be lost. :class:`IterationSeedHook` instead reseeds torch's generator
before every training iteration from ``(seed, rank, iteration)``, so an
iteration draws the same numbers whether or not the run was restarted.
"""
from typing import Optional, Union

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmpsp.registry import HOOKS


def iteration_seed(seed: int, rank: int, iteration: int) -> int:
    """Mix a run's seed, a rank and an iteration into one 32-bit seed.

    Args:
        seed (int): The run's seed (``randomness.seed`` or the one mmengine
            drew and stored in the checkpoint).
        rank (int): Process rank.
        iteration (int): Zero-based training iteration.

    Returns:
        int: A seed for :func:`torch.manual_seed`.
    """
    sequence = np.random.SeedSequence([seed % 2**32, rank, iteration])
    return int(sequence.generate_state(1)[0])


@HOOKS.register_module()
class IterationSeedHook(Hook):
    """Reseed torch's generator (CPU and CUDA) before each training iteration.

    Runs with the highest priority so every other ``before_train_iter`` and
    the forward pass draw from the fresh stream. Ranks get different
    streams, so each rank draws its own dropout masks.
    """

    priority = 'HIGHEST'

    def before_train_iter(self,
                          runner: Runner,
                          batch_idx: int,
                          data_batch: Optional[Union[dict, tuple,
                                                     list]] = None) -> None:
        """Seed torch from ``(runner.seed, rank, runner.iter)``.

        Args:
            runner (Runner): The runner.
            batch_idx (int): Index of the batch in the epoch.
            data_batch (dict or tuple or list, optional): The batch.
        """
        torch.manual_seed(iteration_seed(runner.seed, get_rank(), runner.iter))
