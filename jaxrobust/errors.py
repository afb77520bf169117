"""Exceptions that name the problem and what to do about it."""


class JaxrobustError(Exception):
    """Base class of jaxrobust's own errors.

    Examples:
        Each error is also the built-in exception its kind of problem raises, so
        ``except ValueError`` still catches a bad config:

        >>> issubclass(ConfigError, JaxrobustError), issubclass(ConfigError, ValueError)
        (True, True)
        >>> try:
        ...     raise CheckpointNotFoundError("no checkpoint in runs/x; train first")
        ... except JaxrobustError as err:
        ...     print(type(err).__name__, "-", err)
        CheckpointNotFoundError - no checkpoint in runs/x; train first
    """


class NonFiniteLossError(JaxrobustError, FloatingPointError):
    """The training loss became NaN or infinite; training stopped.

    Examples:
        >>> issubclass(NonFiniteLossError, FloatingPointError)
        True
    """


class CheckpointNotFoundError(JaxrobustError, FileNotFoundError):
    """No checkpoint where one was expected.

    Examples:
        >>> issubclass(CheckpointNotFoundError, FileNotFoundError)
        True
    """


class CheckpointMismatchError(JaxrobustError, ValueError):
    """A checkpoint does not fit the model the config builds.

    Examples:
        >>> issubclass(CheckpointMismatchError, ValueError)
        True
    """


class ConfigError(JaxrobustError, ValueError):
    """A config file or override is invalid.

    Examples:
        >>> issubclass(ConfigError, ValueError)
        True
    """
