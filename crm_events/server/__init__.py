"""The only code that knows Daphne, Twisted, asgiref and WhiteNoise.

cli (`aetherlink-web`) runs daphne_server (AetherlinkServer: Daphne extended by its seams),
which gives each stream a daphne_transport (direct writes via direct_send, the one module that
reads Twisted internals, behind a start-up probe; Twisted's producer flow control);
asgi_transport is the transport for any other ASGI server. asgi_handler (Django's ASGI handler
without a thread per stream), static_files (WhiteNoise, async), access_log, gc_tuning.
"""
