"""Config loading and process setup shared by training and testing.

mmengine's launchers assume CUDA: the ``pytorch``, ``slurm`` and ``mpi``
launchers call ``torch.cuda.set_device`` (which fails on CPU-only torch), and
the Runner wraps the model in DDP with ``device_ids=[LOCAL_RANK]`` (which DDP
rejects for a CPU module). :func:`adapt_to_machine` closes both gaps before the
Runner is built: on CPU it starts the process group itself with ``gloo``, so
the Runner finds it initialised and skips its own launcher, and it asks for
DDP without device ids. On GPU it leaves everything to mmengine.
"""
import datetime
import os
import os.path as osp
import subprocess
from typing import Dict, List, Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel

from mmpsp.engine.checks.config_check import config_parse_error
from mmpsp.utils.config_tree import LOADER_KEYS, walk_dicts
from mmpsp.utils.errors import MMPSPError

from .fail_fast import install_fail_fast
from .launchers import LAUNCHERS


class LaunchEnvironmentError(MMPSPError, KeyError):
    """A launcher's environment variables are missing."""


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
            'configs/pspnet/pspnet_r18-d8_camvid-360x480.py')
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher={launcher!r} is not one of {LAUNCHERS}')
    try:
        cfg = Config.fromfile(config)
    except SyntaxError as error:
        raise config_parse_error(config, error) from None
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])
    return cfg


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
             for path, node in walk_dicts(cfg.get('model'), 'model')
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
        raise LaunchEnvironmentError(
            'launcher=mpi needs the environment variable MASTER_ADDR (the '
            'host of rank 0); export it before mpirun, e.g. mpirun -x '
            'MASTER_ADDR=host0 ...')
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
        raise LaunchEnvironmentError(
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


def _set_loader_option(cfg: Config, option: str, value: bool, when,
                       reason: str) -> List[str]:
    """Set ``option`` on every loader for which ``when(loader)`` holds; log."""
    changed = []
    for key in LOADER_KEYS:
        loader = cfg.get(key)
        if isinstance(loader, dict) and when(loader):
            loader[option] = value
            changed.append(key)
    if changed:
        print_log(f'{option}={value} ({reason}) in: {", ".join(changed)}',
                  logger='current')
    return changed


def adapt_to_machine(cfg: Config) -> None:
    """Adapt a config to this machine and process count; log each change.

    The config declares the run (hooks, loaders, model); only what depends
    on the machine is changed here, in this order, and only when needed:

    1. In a multi-process job, a rank that fails exits at once
       (:func:`~mmpsp.apis.fail_fast.install_fail_fast`).
    2. Loaders with ``num_workers=0`` get ``persistent_workers=False``
       (torch's DataLoader rejects the pair; zero workers is what one sets
       on a laptop or to debug).
    3. Without CUDA, loaders get ``pin_memory=False`` (pinned memory only
       speeds up copies to a GPU; torch would warn and ignore it).
    4. SyncBN becomes BN without CUDA (torch's ``SyncBatchNorm`` runs on GPU
       only) and in a single process (nothing to sync, as mmengine does,
       but logged with the keys).
    5. Multi-process on CPU: the process group is started here with
       ``gloo`` (mmengine's launchers call ``torch.cuda.set_device``) and
       the model is wrapped in DDP without ``device_ids`` (DDP rejects
       them for a CPU module) and with ``broadcast_buffers=True``: every
       training forward pass starts from rank 0's BN statistics.
       Validation and testing bypass DDP's forward; there the declared
       ``RankZeroBuffersHook`` broadcasts rank 0's statistics, the ones a
       checkpoint saves.

    On a CUDA machine steps 3 and 5 change nothing: mmengine's launcher
    and DDP wrapper handle GPUs themselves.

    Args:
        cfg (Config): The full config; changed in place.
    """
    launcher = cfg.get('launcher', 'none')
    # Under Slurm or MPI, WORLD_SIZE is exported only later (by
    # init_cpu_process_group or mmengine's launcher): the launcher says it.
    install_fail_fast(force=launcher != 'none')
    _set_loader_option(
        cfg, 'persistent_workers', False,
        lambda loader: loader.get('num_workers') == 0 and loader.get(
            'persistent_workers'), 'num_workers=0 has no workers to keep')
    on_cpu = not torch.cuda.is_available()
    if on_cpu:
        _set_loader_option(cfg, 'pin_memory', False,
                           lambda loader: loader.get('pin_memory'),
                           'no CUDA device to copy batches to')
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
    print_log(
        f'{launcher} launcher without CUDA: env_cfg.dist_cfg.backend=gloo, '
        'process group started here, model_wrapper_cfg='
        f'{dict(wrapper)}', logger='current')
