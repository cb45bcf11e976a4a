"""The web process's fan-out: channel layer -> every stream of this process.

registry (this process's hub) -> hub (EventHub: receives layer messages through subscription,
skips what it does not understand via foreign, keeps positions, repairs holes from Kafka via
repair, follows partitions via partitions, passes each event to every subscriber) ->
subscriber (one client's position, filter and bounded queue, written by the hub) and observer
(metrics and canary arrivals).
"""
