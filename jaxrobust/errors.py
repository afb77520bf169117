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


class InputError(JaxrobustError, ValueError):
    """An array given to a public function is invalid: shape, dtype, range, NaN or labels.

    Examples:
        >>> issubclass(InputError, ValueError)
        True
    """


class PrecisionWarning(UserWarning):
    """An input was converted to a lower precision and some of its values became equal.

    Examples:
        >>> issubclass(PrecisionWarning, UserWarning)
        True
    """


class CheckpointCorruptError(JaxrobustError, ValueError):
    """A saved array tree (checkpoint, posterior samples, data cache) fails its integrity check:
    a content hash that differs from the one recorded when it was written, a truncated or
    unreadable file, missing metadata, or non-finite values.

    Examples:
        >>> issubclass(CheckpointCorruptError, ValueError)
        True
    """


class WorkdirError(JaxrobustError, OSError):
    """The workdir cannot be used: it is a file, read-only, on a full disk, or otherwise not
    writable; the message names the path and the fix.

    Examples:
        >>> issubclass(WorkdirError, OSError)
        True
    """


class WorkdirLockedError(WorkdirError):
    """Another live process is writing to this workdir (see ``<workdir>/.lock``).

    Examples:
        >>> issubclass(WorkdirLockedError, WorkdirError)
        True
    """
