"""The app's models, where Django looks for them: they live with the code that uses them."""

from crm_events.access import revocation_signals  # noqa: F401 - connects the revocation receivers
from crm_events.access.grant_store import AccessGrant

__all__ = ["AccessGrant"]
