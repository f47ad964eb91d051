"""One exception hierarchy, mapped once to RFC 9457 problem responses by the API."""

from __future__ import annotations


class ClusterBrainError(Exception):
    """Base of every error the platform raises on purpose."""

    status = 500
    title = "Internal error"
    type_slug = "internal"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class NotFound(ClusterBrainError):
    """The resource does not exist, or belongs to another tenant (never tell which)."""

    status = 404
    title = "Not found"
    type_slug = "not-found"


class InvalidInput(ClusterBrainError):
    status = 422
    title = "Invalid input"
    type_slug = "invalid-input"


class Conflict(ClusterBrainError):
    status = 409
    title = "Conflict"
    type_slug = "conflict"


class Unauthenticated(ClusterBrainError):
    status = 401
    title = "Not authenticated"
    type_slug = "unauthenticated"


class Forbidden(ClusterBrainError):
    status = 403
    title = "Forbidden"
    type_slug = "forbidden"


class Unavailable(ClusterBrainError):
    """A backing service (database, broker) cannot be reached right now."""

    status = 503
    title = "Service unavailable"
    type_slug = "unavailable"
