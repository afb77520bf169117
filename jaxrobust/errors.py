"""Exceptions that name the problem and what to do about it."""


class JaxrobustError(Exception):
    """Base class of jaxrobust's own errors."""


class NonFiniteLossError(JaxrobustError, FloatingPointError):
    """The training loss became NaN or infinite; training stopped."""


class CheckpointNotFoundError(JaxrobustError, FileNotFoundError):
    """No checkpoint where one was expected."""


class CheckpointMismatchError(JaxrobustError, ValueError):
    """A checkpoint does not fit the model the config builds."""


class ConfigError(JaxrobustError, ValueError):
    """A config file or override is invalid."""
