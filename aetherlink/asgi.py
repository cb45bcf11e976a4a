"""The ASGI application. Served by `aetherlink-web` (Daphne with AetherLink's server,
see crm_events/server/); any ASGI server can serve it too, e.g.
`daphne -b 127.0.0.1 -p 9010 aetherlink.asgi:application`, with plain streaming."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aetherlink.settings")

from crm_events.server.asgi_handler import stream_aware_asgi_application  # noqa: E402

# Django must be set up before anything imports models or the channel layer.
django_asgi_app = stream_aware_asgi_application(stream_url_names=("crm-events",))

from channels.routing import ProtocolTypeRouter  # noqa: E402

application = ProtocolTypeRouter({"http": django_asgi_app})
