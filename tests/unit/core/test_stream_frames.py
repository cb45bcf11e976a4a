from crm_events.core.stream_frames import Gap, Reset, gap_frames, reset_frames


def named_then_plain(data: str) -> bytes:
    """A named `gap` event for new clients, the same data as an unnamed frame with the id for old ones."""
    return f"event: gap\ndata: {data}\n\nid: TOKEN\ndata: {data}\n\n".encode()


def test_a_reset_lists_each_position_with_its_logs_end_and_restart_or_nulls_for_a_partition_gone():
    resets = [
        Reset("t", 0, requested=40, end=3, restart=0), Reset("t", 2, requested=7, end=None, restart=None),
    ]
    assert reset_frames(resets, "TOKEN") == named_then_plain(
        '{"kind":"gap","reason":"reset","reset":['
        '{"topic":"t","partition":0,"requested_offset":40,"end_offset":3,"restart_offset":0},'
        '{"topic":"t","partition":2,"requested_offset":7,"end_offset":null,"restart_offset":null}]}'
    )


def test_a_retention_gap_keeps_its_shape():
    assert gap_frames([Gap("t", 1, first=2, last=5)], "TOKEN") == named_then_plain(
        '{"kind":"gap","reason":"retention","missing":'
        '[{"topic":"t","partition":1,"first_offset":2,"last_offset":5}]}'
    )
