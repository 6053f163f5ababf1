"""Exceptions of FairLens Monitor: one small class per failure kind under one base.

Every layer raises these; only the CLI (the outer edge of the pipeline) turns them into a
message on stderr and an exit code. Each class builds its own message from the facts it is
given, so callers never format error text by hand. The store's own error,
:class:`fairlens_monitor.store.errors.StoreError`, lives with the store because its message
must hide the database password (``security.passwords``), which this bottom layer may not
import.

Exit codes: 0 ok, 1 a problem was found (e.g. a tampered chain), 2 usage, config or input
error (and anything else the user must fix before the command can work).
"""

from __future__ import annotations


class FairlensError(Exception):
    """Base class of every error this package raises on purpose.

    Attributes:
        exit_code: the process exit code the CLI uses for this error.
    """

    exit_code: int = 2


class ConfigError(FairlensError):
    """A config key is unknown, missing, of the wrong type or out of range."""

    def __init__(self, key: str, problem: str, *, source: str | None = None) -> None:
        self.key = key
        self.problem = problem
        where = f" in {source}" if source else ""
        super().__init__(f"config key '{key}'{where}: {problem}")


class DataError(FairlensError):
    """Input data does not have the columns or values a measurement needs."""

    def __init__(self, message: str, *, column: str | None = None) -> None:
        self.column = column
        super().__init__(message)


class KeyFileError(FairlensError):
    """A key file is missing, corrupt, or readable by other users."""

    def __init__(self, path: str, problem: str, *, fix: str | None = None) -> None:
        self.path = path
        text = f"key file {path}: {problem}"
        if fix:
            text += f" (fix: {fix})"
        super().__init__(text)


class DecryptionError(FairlensError):
    """A token cannot be decrypted with the local key (wrong key or damaged token)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"cannot decrypt token: {detail}")


class OutputFileError(FairlensError):
    """A file the user asked for cannot be written (its folder is missing or not writable)."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = path
        super().__init__(
            f"cannot write {path}: {problem}; choose a writable file in an existing folder"
        )


class AlreadyRunningError(FairlensError):
    """Another daemon already holds the single-instance lock of this database."""

    def __init__(self, lock_path: str, holder: str) -> None:
        self.lock_path = lock_path
        super().__init__(
            f"another fairlens-monitor daemon is already running on this database "
            f"({holder}; lock file {lock_path}); stop it before starting a new one"
        )


class CannotVerifyError(FairlensError):
    """Verification cannot run: checkpoints exist but the public key or anchor is missing."""

    def __init__(self, missing: str, fix: str) -> None:
        super().__init__(f"cannot verify: {missing}; {fix}")


class DamagedRecordError(FairlensError):
    """An audit row cannot be read as the record that was written (a problem found: exit 1)."""

    exit_code = 1

    def __init__(self, seq: object) -> None:
        where = f"seq {seq}" if type(seq) is int else "a row"
        super().__init__(
            f"audit event {where} is damaged: its columns are not the record "
            "that was written; run `fairlens-monitor verify` for the whole chain"
        )


class AnchorWriteError(FairlensError):
    """The anchor file cannot be appended to (so no checkpoint was recorded)."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(
            f"cannot append to the anchor file {path}: {reason}; nothing was "
            "recorded; make the file and its folder writable and run "
            "`fairlens-monitor checkpoint`"
        )


class ChainLostError(FairlensError):
    """The database holds no chain while the anchor file holds checkpoints of one."""

    def __init__(self, anchor_file: object, last_seq: int) -> None:
        super().__init__(
            f"the database holds no audit events, but the anchor file {anchor_file} holds "
            f"checkpoints of a chain up to seq {last_seq}: the database was lost or replaced; "
            "restore from a backup (fairlens-monitor restore FILE) or start a new anchor file "
            "with --new-chain, recorded"
        )


class SourceNotVerifiedError(FairlensError):
    """``db copy`` refused a source whose chain does not verify: nothing copied (exit 1)."""

    exit_code = 1

    def __init__(self, where: str, kind: str) -> None:
        super().__init__(
            f"source does NOT verify: first broken {where} ({kind}); nothing was copied"
        )


class CopyNotVerifiedError(FairlensError):
    """``db copy`` wrote a destination whose chain does not verify: rolled back (exit 1)."""

    exit_code = 1

    def __init__(self, where: str, kind: str) -> None:
        super().__init__(
            f"copy does NOT verify: first broken {where} ({kind}); it was "
            "rolled back, nothing was left in the destination"
        )


class MonitorStateError(FairlensError):
    """A command asked something of a monitor its state does not allow: run or pause one
    that is paused, retired, or not in the config."""

    def __init__(self, monitor: str, problem: str) -> None:
        self.monitor = monitor
        super().__init__(f"monitor '{monitor}': {problem}")


class PausedMonitorError(MonitorStateError):
    """A paused monitor was asked to run (``once --monitor NAME``)."""

    def __init__(self, monitor: str) -> None:
        super().__init__(
            monitor,
            "is paused (fairlens-monitor monitors list); resume it with "
            f"'fairlens-monitor monitors resume {monitor} --by NAME' to run it",
        )
