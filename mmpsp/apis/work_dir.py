"""A work dir that can be written, and one training run in it at a time.

mmengine creates the work dir only when it builds the Runner (a path that
is a file ends in ``FileExistsError`` from ``os.makedirs``), and two runs
started in one work dir overwrite each other's checkpoints and
``last_checkpoint`` without a word. :func:`check_work_dir` names the path
and the fix first; :class:`WorkDirLock` is a lock file in the work dir that
a second run refuses, naming the first run's pid. A lock left by a run that
died (SIGKILL, ``os._exit``, a node reboot) on this host is taken over, with
a warning, once its pid no longer runs.
"""
import atexit
import json
import os
import os.path as osp
import socket
import time
import warnings
from typing import Optional

from mmpsp.utils.errors import MMPSPError

LOCK_NAME = '.mmpsp_train.lock'


class WorkDirError(MMPSPError, OSError):
    """A work dir or output path cannot be written."""


class WorkDirBusyError(MMPSPError, RuntimeError):
    """Another training run holds the work dir."""


class StaleLockWarning(UserWarning):
    """A lock of a run that no longer exists was taken over."""


def check_work_dir(path: str, what: str = 'work_dir') -> None:
    """Raise unless ``path`` is, or can become, a writable folder.

    Args:
        path (str): The folder.
        what (str): How the message names it (``'work_dir'``, ``'--out'``).

    Raises:
        WorkDirError: It is a file, or the nearest existing folder on the
            way to it cannot be written.
    """
    full = osp.abspath(path)
    if osp.exists(full) and not osp.isdir(full):
        raise WorkDirError(
            f'{what} {path} (resolved: {full}) is a file, not a folder; '
            f'pass another {"--work-dir" if what == "work_dir" else what} '
            'or move the file away. Nothing was written')
    existing = full
    while not osp.isdir(existing):
        parent = osp.dirname(existing)
        if parent == existing:
            break
        if osp.exists(parent) and not osp.isdir(parent):
            raise WorkDirError(
                f'{what} {path} cannot be created: {parent} is a file; '
                'pass a path under a folder. Nothing was written')
        existing = parent
    if not os.access(existing, os.W_OK | os.X_OK):
        raise WorkDirError(
            f'{what} {path} cannot be written: {existing} is read-only '
            f'for this user; pass a {what} where you can write. Nothing '
            'was written')


def _rank() -> int:
    for key in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        if os.environ.get(key, '').isdigit():
            return int(os.environ[key])
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


class WorkDirLock:
    """The lock file ``<work_dir>/.mmpsp_train.lock`` of a training run.

    Only rank 0 of a multi-process job takes it; the file holds the pid,
    host, start time and config. Released by :meth:`release` and, should
    the run end another way, at interpreter exit.

    Args:
        work_dir (str): The run's work dir (created if needed).
        config (str, optional): The config file, for the message another
            run shows. Defaults to None.
    """

    def __init__(self, work_dir: str, config: Optional[str] = None) -> None:
        self.path = osp.join(work_dir, LOCK_NAME)
        self.work_dir = work_dir
        self.config = config
        self.held = False

    def _owner(self) -> Optional[dict]:
        try:
            with open(self.path, encoding='utf-8') as f:
                owner = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # half written by a run that died: stale
        return owner if isinstance(owner, dict) else {}

    def acquire(self) -> 'WorkDirLock':
        """Take the lock, or raise naming the run that holds it.

        Returns:
            WorkDirLock: ``self``.

        Raises:
            WorkDirBusyError: A live run holds the work dir.
        """
        if _rank() != 0:
            return self
        os.makedirs(self.work_dir, exist_ok=True)
        host = socket.gethostname()
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY,
                             0o644)
            except FileExistsError:
                self._handle_existing(host)
                continue
            with os.fdopen(fd, 'w', encoding='utf-8') as f:
                json.dump(dict(pid=os.getpid(), host=host,
                               started=time.strftime('%Y-%m-%d %H:%M:%S'),
                               config=self.config), f)
            self.held = True
            atexit.register(self.release)
            return self
        raise WorkDirBusyError(
            f'could not take the lock {self.path}: other runs keep '
            'creating it; pass another --work-dir')

    def _handle_existing(self, host: str) -> None:
        owner = self._owner()
        if owner is None:
            return  # released meanwhile: try again
        pid = owner.get('pid')
        same_host = owner.get('host') == host
        if isinstance(pid, int) and (pid == os.getpid() and same_host):
            os.remove(self.path)  # this process's own, from an earlier run
            return
        if isinstance(pid, int) and (not same_host or _alive(pid)):
            where = f'pid {pid} on {owner.get("host")}'
            since = f', started {owner["started"]}' if owner.get(
                'started') else ''
            config = f' with {owner["config"]}' if owner.get('config') else ''
            stop = (f'stop it (kill {pid})' if same_host else
                    f'stop it, or delete {self.path} if it has ended')
            raise WorkDirBusyError(
                f'work_dir {self.work_dir} is in use by another training '
                f'run: {where}{since}{config} (lock file {self.path}). Two '
                "runs in one work dir overwrite each other's checkpoints "
                f'and last_checkpoint. Wait for it to finish, {stop}, or '
                'pass another --work-dir. Nothing was written')
        warnings.warn(
            f'taking over the lock {self.path} of a run that no longer '
            f'runs (pid {pid} on {owner.get("host", "?")}): it ended '
            'without releasing it (killed or crashed)', StaleLockWarning,
            stacklevel=3)
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass

    def release(self) -> None:
        """Remove the lock file if this process holds it."""
        if not self.held:
            return
        self.held = False
        owner = self._owner()
        if owner and owner.get('pid') == os.getpid():
            os.remove(self.path)

    def __enter__(self) -> 'WorkDirLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
