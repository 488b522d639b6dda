"""Make a rank that fails exit at once, so the launcher can stop the rest.

When one worker of a ``torchrun`` job exits non-zero, the elastic agent
sends SIGTERM to the others within seconds; the job only hangs (until the
collective timeout, 30 minutes by default) if the failing worker does not
exit. After an uncaught exception Python still joins non-daemon threads and
runs finalizers (data loader workers, process groups), any of which can
block. :func:`install_fail_fast` ends the process right after the traceback
is printed.
"""
import logging
import os
import sys
import traceback
from types import TracebackType
from typing import Optional, Type

_installed = False


def _world_size() -> int:
    try:
        return int(os.environ.get('WORLD_SIZE', '1'))
    except ValueError:
        return 1


def install_fail_fast(force: bool = False) -> bool:
    """Exit the process on an uncaught exception in a multi-process job.

    The traceback is printed (with the rank) and logs are flushed first,
    then the process exits with status 1 without waiting for threads or
    finalizers. Single-process runs keep Python's normal exit.

    Args:
        force (bool): Install even if ``WORLD_SIZE`` is 1 or unset.
            Defaults to False.

    Returns:
        bool: Whether the hook is installed.
    """
    global _installed
    if _installed:
        return True
    if _world_size() <= 1 and not force:
        return False

    def exit_now(exc_type: Type[BaseException], exc: BaseException,
                 tb: Optional[TracebackType]) -> None:
        # The real stderr: torch.distributed's own excepthook (which wraps
        # this one once the process group starts) captures sys.stderr into
        # a buffer it would only print after this hook returns.
        stream = sys.__stderr__
        rank = os.environ.get('RANK', '?')
        lines = ''.join(traceback.format_exception(exc_type, exc, tb))
        lines += (f'rank {rank} failed with {exc_type.__name__}: {exc}; '
                  'exiting so the launcher stops the other ranks\n')
        stream.write(''.join(f'[rank{rank}]: {line}\n'
                             for line in lines.splitlines()))
        stream.flush()
        sys.stdout.flush()
        logging.shutdown()
        os._exit(1)

    sys.excepthook = exit_now
    _installed = True
    return True
