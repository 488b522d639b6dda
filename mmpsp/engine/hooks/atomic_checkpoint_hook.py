"""Crash-safe checkpoints: atomic writes, old files removed last.

mmengine 0.10's ``CheckpointHook`` deletes the oldest checkpoint *before*
writing the new one, writes the new one in place (a kill mid-write leaves a
truncated ``.pth``) and then points ``last_checkpoint`` at it with a plain
``open(..., 'w')``. A run killed at the wrong moment can therefore resume
from a file that does not load, or have none left at all.

:class:`AtomicCheckpointHook` writes each file to a temporary file in the
same folder, fsyncs it and renames it over the target (``os.replace`` is
atomic on POSIX and Windows), updates ``last_checkpoint`` the same way, and
only then removes checkpoints beyond ``max_keep_ckpts``.
"""
import glob
import os
import os.path as osp
import tempfile
from typing import Union

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook

from mmpsp.registry import HOOKS

ATOMIC_BACKEND = 'mmpsp_atomic_local'


def _file_mode() -> int:
    # os.umask can only be read by setting it; restore it at once (at
    # import, before any worker thread exists).
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


# mkstemp makes 0600 files; checkpoints get the usual permissions.
FILE_MODE = _file_mode()


def _fsync_dir(dirname: str) -> None:
    """Persist a rename: the directory entry lives in the directory."""
    if os.name != 'posix':
        return
    fd = os.open(dirname, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(data: bytes, filepath: Union[str, os.PathLike]) -> None:
    """Write ``data`` to ``filepath`` so readers see the old or new file.

    Args:
        data (bytes): The full file content.
        filepath (str | PathLike): Target path; its folder is created.
    """
    filepath = osp.abspath(os.fspath(filepath))
    dirname = osp.dirname(filepath)
    os.makedirs(dirname, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f'.{osp.basename(filepath)}.', suffix='.tmp', dir=dirname)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(dirname)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic, fsynced writes."""

    def put(self, obj: bytes, filepath: Union[str, os.PathLike]) -> None:
        """Write bytes atomically (see :func:`atomic_write`).

        Args:
            obj (bytes): Data to write.
            filepath (str | PathLike): Target path.
        """
        atomic_write(obj, filepath)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, os.PathLike],
                 encoding: str = 'utf-8') -> None:
        """Write text atomically (see :func:`atomic_write`).

        Args:
            obj (str): Text to write.
            filepath (str | PathLike): Target path.
            encoding (str): Text encoding. Defaults to ``'utf-8'``.
        """
        atomic_write(obj.encode(encoding), filepath)


# A named backend, not a replacement of mmengine's 'local': only runs that
# use AtomicCheckpointHook change how they write.
register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose files survive a crash at any moment.

    Takes exactly :class:`mmengine.hooks.CheckpointHook`'s arguments. For a
    local ``out_dir`` (no ``backend_args``), every checkpoint (regular
    and best) and the ``last_checkpoint`` pointer are written
    atomically, and checkpoints beyond ``max_keep_ckpts`` are removed only
    after the new one is on disk, so a killed run always leaves a loadable
    latest checkpoint. Remote backends keep mmengine's behaviour, except
    for the removal order.
    """

    def before_train(self, runner) -> None:
        """Resolve ``out_dir`` as mmengine does, then write atomically there.

        Args:
            runner (Runner): The runner.
        """
        super().before_train(runner)
        if (self.backend_args is None and self.file_client_args is None
                and type(self.file_backend) is LocalBackend):
            # From here on every write of this hook (regular, best and
            # published checkpoints) goes through the atomic backend.
            self.backend_args = dict(backend=ATOMIC_BACKEND)
            self.file_backend = AtomicLocalBackend()
            if is_main_process():
                self._remove_torn_files(runner)

    def _remove_torn_files(self, runner) -> None:
        # Temporary files of a run killed mid-write; never loadable, and
        # each is as large as a checkpoint.
        pattern = osp.join(glob.escape(str(self.out_dir)), '.*.tmp')
        for path in sorted(glob.glob(pattern)):
            os.remove(path)
            runner.logger.warning(
                f'removed {path}: a checkpoint write that did not finish')

    def _save_checkpoint_with_step(self, runner, step: int,
                                   meta: dict) -> None:
        stale = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                stale.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)

        if not is_main_process():
            return
        atomic_write(
            str(self.last_ckpt).encode('utf-8'),
            osp.join(runner.work_dir, 'last_checkpoint'))
        for old in stale:
            path = self.file_backend.join_path(self.out_dir,
                                               self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                # DeepSpeed writes checkpoints as folders.
                self.file_backend.rmtree(path)
