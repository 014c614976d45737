"""Errors with a message meant for the person who acted (apart from bugs, which are plain exceptions)."""

from __future__ import annotations


class ActionError(Exception):
    """A business refusal: the user sees `message` privately and nothing changes."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownCase(ActionError):
    pass


class NotAllowed(ActionError):
    pass


class InvalidInput(ValueError):
    """Inbound payload problem; the message names the field."""


class SendError(Exception):
    """A platform refused or failed a send.

    `permanent` errors are shown on the card with a Retry button; others are retried with backoff.
    `retry_after` (seconds) comes from the platform's rate-limit headers when it gave one.
    """

    def __init__(self, message: str, *, permanent: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after


class CredentialsError(SendError):
    """The platform refused the source's credentials (revoked, expired or wrong): retrying cannot help.

    A poller that meets it stops its source and tells the admin channel once; a send fails for good.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)
