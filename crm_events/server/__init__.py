"""The only code that knows Daphne, Twisted, asgiref and WhiteNoise.

cli (`aetherlink-web`) runs daphne_server (AetherlinkServer: Daphne extended by its seams),
or with `--workers N` workers (N of itself under a supervisor, each listening with reuse_port),
whose HTTP connections are request_limits channels (a request head over the limits answered
with a JSON 414 or 431 from head_refusals) and which gives each stream a daphne_transport
(direct writes via direct_send; Twisted's producer flow control). direct_send and
request_limits are the two modules that read Twisted internals, each behind a start-up probe.
The stream transport's factory goes up to the streams in the request's scope (core.transport's
TRANSPORT_EXTENSION): nothing here imports the streams. asgi_handler (Django's ASGI handler
without a thread per stream), static_files (WhiteNoise, async), access_log, gc_tuning.
"""
