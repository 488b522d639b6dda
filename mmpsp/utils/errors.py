"""The base class of every error mmpsp raises on purpose.

Each mmpsp error also derives from the builtin exception a caller would
catch for the same mistake (``ValueError``, ``FileNotFoundError``, ...), so
``except ValueError`` keeps working, while ``except MMPSPError`` catches
exactly the errors whose message names the file or key and the fix.
"""


class MMPSPError(Exception):
    """An error whose message names what is wrong and how to fix it.

    ``str()`` is the message itself, also when the class derives from
    ``KeyError`` (whose own ``str()`` is the quoted repr of its argument,
    which prints a long message as one line full of ``\\n``).
    """

    def __str__(self) -> str:
        return ' '.join(str(arg) for arg in self.args)


class ConfigKeyError(MMPSPError, KeyError):
    """A config lacks a key that the requested option needs."""


class ArgumentError(MMPSPError, ValueError, AssertionError):
    """A model argument has a value the component cannot build.

    Also an ``AssertionError``: mmseg's components assert on the same
    arguments, so code and tests written against mmseg catch it as before.
    """
