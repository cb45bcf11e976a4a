"""The pure core: what an event, a position, a resume id, a filter, a frame and a layer message are.

No Django, Kafka, Redis, Twisted or channels imports (enforced by tests/test_architecture.py):
everything here is plain Python that both processes share and that unit tests can take apart.
Read in this order: records (a Kafka record becomes a payload) -> messages (how payloads travel
to web processes) -> live_event (a payload encoded once) -> positions, tokens (where a stream
stands, as its resume id) -> filters -> frames, stream_frames (the bytes on the wire) ->
transport (where a stream's bytes go).
"""
