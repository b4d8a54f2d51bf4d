"""Infrastructure providers behind one :class:`~.base.Provider` interface."""

from __future__ import annotations

from .base import (
    Provider,
    ProviderContext,
    ProviderError,
    ProviderErrorKind,
    ServerRecord,
    ServerSpec,
)

__all__ = [
    "Provider",
    "ProviderContext",
    "ProviderError",
    "ProviderErrorKind",
    "ServerRecord",
    "ServerSpec",
    "get_provider",
]


def get_provider(name: str, context: ProviderContext) -> Provider:
    """The provider called ``name`` working in ``context``."""
    if name == "local":
        from .local import LocalProvider

        return LocalProvider(context)
    if name == "aws":
        from .aws import AwsProvider

        return AwsProvider(context)
    if name == "upcloud":
        from .upcloud import UpCloudProvider

        return UpCloudProvider(context)
    raise ProviderError(
        ProviderErrorKind.INVALID, f"unknown provider {name!r} (known: local, aws, upcloud)"
    )
