"""Find a config's pretrained weights before training needs them.

mmengine fetches ``init_cfg=dict(type='Pretrained', checkpoint=...)`` only
when the runner initialises the model, after datasets and workers are up;
offline, that ends in a urllib traceback that names neither the config key
nor a way out. :func:`check_pretrained` resolves every such checkpoint to
the file mmengine would read and, when that file is absent and cannot be
downloaded, raises :class:`PretrainedWeightsError` naming the key, the URL,
the cache path and the fixes.
"""
import os.path as osp
import socket
from typing import Any, List, Optional, Tuple
from urllib.parse import urlparse

import torch
from mmengine.runner.checkpoint import (
    _get_mmengine_home,
    get_deprecated_model_names,
    get_external_models,
)

from mmpsp.utils.config_tree import walk_dicts
from mmpsp.utils.errors import MMPSPError

_OPENMMLAB_PREFIXES = ('open-mmlab://', 'openmmlab://')


class PretrainedWeightsError(MMPSPError, FileNotFoundError):
    """Pretrained weights named by a config are neither cached nor
    reachable."""


def find_pretrained(cfg: Any,
                    prefix: str = 'model') -> List[Tuple[str, str]]:
    """List every ``Pretrained`` init checkpoint in a model config.

    Args:
        cfg (dict | list): A model config (``cfg.model``) or any part of it.
        prefix (str): Dotted key of ``cfg``, used in the returned keys.
            Defaults to ``'model'``.

    Returns:
        list[tuple[str, str]]: ``(key, checkpoint)`` pairs, where ``key``
        is the dotted ``--cfg-options`` key of the ``init_cfg`` (e.g.
        ``'model.backbone.init_cfg'``).
    """
    return [(key, node['checkpoint'])
            for key, node in walk_dicts(cfg, prefix)
            if node.get('type') == 'Pretrained' and node.get('checkpoint')]


def resolve_checkpoint(
        checkpoint: str) -> Tuple[Optional[str], Optional[str]]:
    """Return the URL and the local file mmengine reads for a checkpoint.

    Args:
        checkpoint (str): ``open-mmlab://name``, an ``http(s)://`` URL or a
            local path.

    Returns:
        tuple[str | None, str | None]: ``(url, local_path)``. ``url`` is
        ``None`` for local files; ``local_path`` is where a downloaded URL
        is cached (``torch.hub.get_dir()/checkpoints``). Both are ``None``
        for schemes this module does not know (``torchvision://``,
        ``s3://``, ...), which are left to mmengine.
    """
    if checkpoint.startswith(_OPENMMLAB_PREFIXES):
        name = checkpoint.split('://', 1)[1]
        name = get_deprecated_model_names().get(name, name)
        url = get_external_models().get(name)
        if url is None:
            raise PretrainedWeightsError(
                f'checkpoint {checkpoint!r} is not in mmengine\'s '
                'open-mmlab model list (mmengine/hub/openmmlab.json); use '
                'a name from that file, a URL or a local path')
        if not url.startswith(('http://', 'https://')):
            return None, osp.join(_get_mmengine_home(), url)
        checkpoint = url
    if checkpoint.startswith(('http://', 'https://')):
        filename = osp.basename(urlparse(checkpoint).path)
        return checkpoint, osp.join(torch.hub.get_dir(), 'checkpoints',
                                    filename)
    if '://' in checkpoint:
        return None, None
    # mmengine's local loader expands ``~`` too.
    return None, osp.expanduser(checkpoint)


def _reachable(url: str, timeout: float) -> bool:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == 'https' else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout).close()
    except OSError:
        return False
    return True


def check_pretrained(cfg: Any,
                     offline: Optional[bool] = None,
                     timeout: float = 3.0) -> None:
    """Fail early, with the fixes, if pretrained weights cannot be loaded.

    Args:
        cfg (Config | dict): The full config (with ``model``) or a model
            config.
        offline (bool, optional): ``True`` treats every URL as unreachable,
            ``False`` assumes downloads work; ``None`` tries a TCP
            connection to each checkpoint's host. Defaults to ``None``.
        timeout (float): Seconds for that connection attempt. Defaults to
            ``3.0``.

    Raises:
        PretrainedWeightsError: A local checkpoint file is missing, or a
            URL is neither cached nor reachable.
    """
    # mmengine's Config is not a dict, its ``model`` (a ConfigDict) is.
    model = cfg.get('model', cfg) if hasattr(cfg, 'get') else cfg
    for key, checkpoint in find_pretrained(model):
        url, local = resolve_checkpoint(checkpoint)
        if local is None or osp.isfile(local):
            continue
        scratch = f'--cfg-options {key}=None'
        if url is None:
            raise PretrainedWeightsError(
                f'{key}.checkpoint={checkpoint!r}: file {local} does not '
                f'exist; fix the path (--cfg-options {key}.checkpoint='
                f'/path/to/weights.pth) or train from scratch ({scratch})')
        is_offline = (not _reachable(url, timeout)
                      if offline is None else offline)
        if is_offline:
            raise PretrainedWeightsError(
                f'{key}.checkpoint={checkpoint!r}: pretrained weights are '
                f'not cached at {local} and {urlparse(url).hostname} cannot '
                f'be reached. Download {url} on a machine with internet and '
                f'copy it to {local}, or pass a local file (--cfg-options '
                f'{key}.checkpoint=/path/to/weights.pth), or train from '
                f'scratch ({scratch}).')


__all__ = [
    'PretrainedWeightsError', 'check_pretrained', 'find_pretrained',
    'resolve_checkpoint'
]
