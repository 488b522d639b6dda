"""Training-engine pieces: checks, hooks and launch helpers."""
from .preflight import ConfigCheckError, preflight

__all__ = ['ConfigCheckError', 'preflight']
