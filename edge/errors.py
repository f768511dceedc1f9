"""Which exceptions are the user's input going wrong (printed as one line, exit
2) rather than a bug (traceback)."""

from __future__ import annotations


def user_errors() -> tuple[type[BaseException], ...]:
    from edge.config import ConfigError

    errors: list[type[BaseException]] = [ConfigError, PermissionError, FileNotFoundError]
    try:
        from edge._core import CodecError, FrameError, SpoolError
    except ImportError:  # the extension is not built: config checks still work
        pass
    else:
        errors += [FrameError, CodecError, SpoolError]
    return tuple(errors)
