"""Errors of the recordings domain, each with a stable ``code``."""

from __future__ import annotations

from auxilio.server.errors import Conflict, DomainError, NotFound


class RecordingNotFound(NotFound):
    code = "recording_not_found"
    default_message = "This support session has no recording."


class RecordingDeleted(Conflict):
    code = "recording_deleted"
    default_message = "The recording was deleted (retention) and cannot be exported."


class RecordingCorrupt(DomainError):
    """The file is truncated or altered; the message names the byte offset."""

    code = "recording_corrupt"
    status = 422
    default_message = "The recording file is damaged."


class RecordingKeyWrong(DomainError):
    code = "recording_key_wrong"
    status = 422
    default_message = "The auditor key does not open this recording."


class RecordingKeyMissing(DomainError):
    code = "recording_key_missing"
    status = 422
    default_message = "The recording holds frames whose sealed keys never arrived."


class RecordingKeyRefused(DomainError):
    code = "recording_key_refused"
    status = 409
    default_message = "This support session is not being recorded."


class RecordingFileMissing(NotFound):
    """The row exists but the relay's file does not (removed by hand, or another data dir)."""

    code = "recording_missing"
    default_message = "The recording's file is not on this server."


class RecordingTooLarge(DomainError):
    """Too much to hand to a browser at once; the command line export reads any size."""

    code = "recording_too_large"
    status = 413
    default_message = "The recording is too large to play in the page; export it instead."


class RecordingCodecUnsupported(DomainError):
    """The screen channel used a codec the video export cannot write (VP8, VP9, JPEG can)."""

    code = "recording_codec_unsupported"
    status = 422
    default_message = "The recording's screen codec cannot be exported as video."
