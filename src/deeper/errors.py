"""Errors that are the user's to fix.

Everything the command line reports as a one-line message (never a traceback)
derives from :class:`DeeperError`.  Library users can catch the specific classes;
the data errors are also ``ValueError`` so code written against the standard
exception hierarchy keeps working.
"""


class DeeperError(Exception):
    """A problem with the input or the environment, explained in one line."""


class DataError(DeeperError, ValueError):
    """A dataset file is missing, malformed or fails its checksum."""


class ChecksumError(DataError):
    """A file's content does not match its published checksum."""


class DownloadError(DataError):
    """No mirror delivered a file with the right checksum."""


class ConfigError(DeeperError, ValueError):
    """A bad option value or combination of options."""


class CheckpointError(DeeperError):
    """A checkpoint or weights file is missing, corrupt or unsafe to load."""


class DivergedError(DeeperError):
    """The loss became NaN or infinite during training."""


def unknown_name(what: str, name: str, known) -> ConfigError:
    """The error for a name not in ``known``: ``unknown WHAT 'NAME'; did you mean ...? (known: ...)``.

    ``what`` says what was looked up ("model", "scratch-engine optimizer", ...); the
    caller raises the result (``from None``: the ``KeyError`` behind it is no news).
    """
    import difflib

    close = difflib.get_close_matches(name, list(known), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"unknown {what} {name!r}{hint} (known: {', '.join(sorted(known))})")
