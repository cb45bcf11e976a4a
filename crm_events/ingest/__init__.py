"""The `consume_events` process: Kafka -> channel layer.

publisher (the consumer loop: poll, decode, publish, commit), dead_letters, canary (the
synthetic event producer), demo (demo events for `produce_events`), smoke (`manage.py smoke`).
Web-process code never imports this package (tests/test_architecture.py).
"""
