"""The options that say how a tool's processes were started.

``--launcher`` and ``--local_rank``, shared by ``mmpsp train|test`` and
``tools/*.py``; light to import, so a command parses its arguments before
loading torch.
"""
import argparse
import os

# The ``launcher`` values mmengine's Runner accepts.
LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def set_local_rank(local_rank: int) -> None:
    """Export ``LOCAL_RANK`` from ``--local_rank`` when the launcher did not.

    ``torch.distributed.launch`` passes ``--local-rank``; torchrun exports
    the variable, which then wins.

    Args:
        local_rank (int): The value given on the command line.
    """
    os.environ.setdefault('LOCAL_RANK', str(local_rank))


def add_launch_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--launcher`` and ``--local_rank`` to a tool's argument parser.

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
    """
    parser.add_argument(
        '--launcher',
        choices=LAUNCHERS,
        default='none',
        help='how the processes were started (tools/dist_*.sh use pytorch, '
        'tools/slurm_*.sh use slurm)')
    parser.add_argument(
        '--local_rank',
        '--local-rank',
        type=int,
        default=0,
        help='set by torch.distributed.launch; torchrun uses LOCAL_RANK')
