"""Config loading and process setup shared by training and testing.

mmengine's launchers assume CUDA: the ``pytorch``, ``slurm`` and ``mpi``
launchers call ``torch.cuda.set_device`` (which fails on CPU-only torch), and
the Runner wraps the model in DDP with ``device_ids=[LOCAL_RANK]`` (which DDP
rejects for a CPU module). :func:`prepare_launch` closes both gaps before the
Runner is built: on CPU it starts the process group itself with ``gloo``, so
the Runner finds it initialised and skips its own launcher, and it asks for
DDP without device ids. On GPU it leaves everything to mmengine.
"""
import argparse
import datetime
import os
import os.path as osp
import subprocess
from typing import Dict, Iterator, List, Optional, Tuple

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel

from mmpsp.engine.speed import pin_memory_on_cuda

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
# Norm layer types that build a synchronised BatchNorm (mmcv's names).
SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN')


def load_config(config: str,
                cfg_options: Optional[Dict] = None,
                work_dir: Optional[str] = None,
                launcher: str = 'none') -> Config:
    """Read a config and apply the command-line settings every tool shares.

    ``work_dir`` is chosen as in mmseg: the argument, else the config's own
    ``work_dir``, else ``work_dirs/<config stem>``.

    Args:
        config (str): Path of the config file.
        cfg_options (dict, optional): ``--cfg-options`` pairs, merged into
            the config. Defaults to None.
        work_dir (str, optional): Directory for logs and checkpoints.
            Defaults to None.
        launcher (str): One of ``'none'``, ``'pytorch'``, ``'slurm'``,
            ``'mpi'``. Defaults to ``'none'``.

    Returns:
        Config: The merged config with ``launcher`` and ``work_dir`` set.
    """
    if not osp.isfile(config):
        raise FileNotFoundError(
            f'config file {config!r} does not exist (resolved: '
            f'{osp.abspath(config)}); pass the path of a config such as '
            'configs/pspnet_r18-d8_camvid-360x480.py')
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher={launcher!r} is not one of {LAUNCHERS}')
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])
    return cfg


def _walk_dicts(node, path: str) -> Iterator[Tuple[str, dict]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk_dicts(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _walk_dicts(value, f'{path}.{index}')


def revert_sync_bn_in_config(cfg: Config, reason: str) -> List[str]:
    """Turn every SyncBN norm layer in ``cfg.model`` into plain BN.

    Checkpoints stay interchangeable: SyncBN and BN hold the same parameters
    and buffers under the same names. ``cfg.sync_bn`` (mmengine's switch
    that converts BN to SyncBN when wrapping) is removed for the same reason.

    Args:
        cfg (Config): The full config; changed in place.
        reason (str): Why, for the log line.

    Returns:
        list[str]: The config keys that were changed.
    """
    found = [(path, node)
             for path, node in _walk_dicts(cfg.get('model'), 'model')
             if node.get('type') in SYNC_BN_TYPES]
    for _, node in found:
        node['type'] = 'BN'
    changed = [path for path, _ in found]
    if cfg.get('sync_bn') is not None:
        cfg.pop('sync_bn')
        changed.append('sync_bn')
    if changed:
        print_log(
            f'SyncBN -> BN ({reason}) in: {", ".join(changed)}',
            logger='current')
    return changed


def _slurm_env() -> Dict[str, str]:
    node_list = os.environ['SLURM_NODELIST']
    addr = os.environ.get('MASTER_ADDR') or subprocess.getoutput(
        f'scontrol show hostname {node_list} | head -n1')
    return dict(
        RANK=os.environ['SLURM_PROCID'],
        WORLD_SIZE=os.environ['SLURM_NTASKS'],
        # SLURM_LOCALID is unset under some srun setups; rank on the node is
        # then unknown, and on CPU only DDP's bookkeeping reads it.
        LOCAL_RANK=os.environ.get('SLURM_LOCALID', '0'),
        MASTER_ADDR=addr,
        MASTER_PORT=os.environ.get('MASTER_PORT', '29500'))


def _mpi_env() -> Dict[str, str]:
    if 'MASTER_ADDR' not in os.environ:
        raise KeyError('launcher=mpi needs the environment variable '
                       'MASTER_ADDR (the host of rank 0); export it before '
                       'mpirun, e.g. mpirun -x MASTER_ADDR=host0 ...')
    return dict(
        RANK=os.environ['OMPI_COMM_WORLD_RANK'],
        WORLD_SIZE=os.environ['OMPI_COMM_WORLD_SIZE'],
        LOCAL_RANK=os.environ['OMPI_COMM_WORLD_LOCAL_RANK'],
        MASTER_ADDR=os.environ['MASTER_ADDR'],
        MASTER_PORT=os.environ.get('MASTER_PORT', '29500'))


def init_cpu_process_group(launcher: str,
                           timeout: Optional[float] = None) -> None:
    """Join the process group with ``gloo``, without touching CUDA.

    Reads the ranks the way mmengine's launcher of the same name does
    (torchrun's ``RANK``/``WORLD_SIZE``, Slurm's ``SLURM_*``, Open MPI's
    ``OMPI_COMM_WORLD_*``) and exports ``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` so the Runner and
    the samplers see the same values.

    Args:
        launcher (str): ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
        timeout (float, optional): Collective timeout in seconds
            (``env_cfg.dist_cfg.timeout``). Defaults to None.
    """
    if torch_dist.is_initialized():
        return
    if launcher == 'slurm':
        os.environ.update(_slurm_env())
    elif launcher == 'mpi':
        os.environ.update(_mpi_env())
    elif launcher != 'pytorch':
        raise ValueError(f'launcher={launcher!r} does not start processes; '
                         "use 'pytorch', 'slurm' or 'mpi'")
    missing = [
        key for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
        if key not in os.environ
    ]
    if missing:
        raise KeyError(
            f'launcher={launcher!r} needs the environment variables '
            f'{missing}; start the job with tools/dist_train.sh (torchrun) '
            'or tools/slurm_train.sh, or use --launcher none')
    kwargs = {}
    if timeout is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=timeout)
    torch_dist.init_process_group(
        backend='gloo',
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **kwargs)


def drop_persistent_workers_without_workers(cfg: Config) -> List[str]:
    """Turn off ``persistent_workers`` in loaders with ``num_workers=0``.

    torch's DataLoader rejects the pair, and ``num_workers=0`` is what one
    sets to debug or to run on a laptop, while the configs ask for
    persistent workers.

    Args:
        cfg (Config): The full config; changed in place.

    Returns:
        list[str]: The loaders that were changed.
    """
    changed = []
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if (isinstance(loader, dict) and loader.get('num_workers') == 0
                and loader.get('persistent_workers')):
            loader['persistent_workers'] = False
            changed.append(key)
    if changed:
        print_log(
            'persistent_workers=False (num_workers=0 has no workers to keep) '
            f'in: {", ".join(changed)}',
            logger='current')
    return changed


def prepare_launch(cfg: Config) -> None:
    """Make a config runnable on this machine before a Runner is built.

    Loaders with ``num_workers=0`` get ``persistent_workers=False``; on
    CUDA, loaders get ``pin_memory=True`` unless they set it.

    On CPU (no CUDA device visible): SyncBN becomes BN (torch's
    ``SyncBatchNorm`` runs on GPU only); with a launcher, the process group
    is started here with ``gloo`` and the model is wrapped in DDP without
    ``device_ids`` and with ``broadcast_buffers=True``: every forward pass
    starts from rank 0's BN statistics, so the ranks' running statistics
    do not drift apart. On GPU only the
    single-process case is touched (SyncBN becomes BN, as mmengine would do
    too, but logged with the keys).

    Args:
        cfg (Config): The full config; changed in place.
    """
    drop_persistent_workers_without_workers(cfg)
    pin_memory_on_cuda(cfg)
    launcher = cfg.get('launcher', 'none')
    on_cpu = not torch.cuda.is_available()
    if on_cpu:
        revert_sync_bn_in_config(
            cfg, 'no CUDA device: torch.nn.SyncBatchNorm runs on GPU only; '
            'batch statistics are now per process')
    elif launcher == 'none':
        revert_sync_bn_in_config(cfg, 'single process, nothing to sync')
    if launcher == 'none' or not on_cpu:
        return
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    init_cpu_process_group(launcher, dist_cfg.get('timeout'))
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper_cls = MODEL_WRAPPERS.get(
        wrapper.setdefault('type', 'MMDistributedDataParallel'))
    # The Runner passes device_ids=[LOCAL_RANK] to DDP wrappers unless the
    # config names them; DDP accepts only None for a CPU module.
    if isinstance(wrapper_cls, type) and issubclass(
            wrapper_cls, DistributedDataParallel):
        wrapper['device_ids'] = None
        wrapper.setdefault('broadcast_buffers', True)
    cfg.model_wrapper_cfg = wrapper


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
