"""The Kafka clients: building them (clients), offsets and partitions of a web process (offsets),
fetching so that no record blocks a partition (fetch), and reading history for resumes and
repairs (replay)."""
