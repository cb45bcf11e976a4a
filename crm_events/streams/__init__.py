"""One stream, from request to farewell: view (GET /crm-events) -> service (the steps in order) ->
guard (who may read what) -> request (parameters and resume id) -> positioning (where it
starts) -> session (hello, catch_up from Kafka, live, farewell)."""
