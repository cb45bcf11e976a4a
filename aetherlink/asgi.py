"""ASGI entry point: `daphne -b 127.0.0.1 -p 9010 aetherlink.asgi:application`."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aetherlink.settings")

from crm_events.server.asgi_handler import stream_aware_asgi_application  # noqa: E402

# Django must be set up before anything imports models or the channel layer.
django_asgi_app = stream_aware_asgi_application(stream_url_names=("crm-events",))

from channels.routing import ProtocolTypeRouter  # noqa: E402

from crm_events.config import stream_config  # noqa: E402
from crm_events.server.access_log import access_log_integrate  # noqa: E402
from crm_events.server.daphne_integration import daphne_integrate  # noqa: E402

daphne_integrate(shutdown_grace=stream_config().shutdown_grace)
access_log_integrate()

application = ProtocolTypeRouter({"http": django_asgi_app})
