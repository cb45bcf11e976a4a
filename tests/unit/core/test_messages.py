from crm_events.core import messages as broadcast


def item(size: int) -> dict:
    return broadcast.record_item({"offset": size}, prev=0, size=size)


def test_batches_stay_under_the_byte_bound_and_keep_order():
    items = [item(400_000), item(400_000), item(400_000), item(10)]
    batches = list(broadcast.batches_split(items))
    assert [[i["size"] for i in batch] for batch in batches] == [[400_000, 400_000], [400_000, 10]]


def test_an_item_larger_than_the_bound_travels_alone():
    items = [item(10), item(3 << 20), item(10)]
    assert [len(batch) for batch in broadcast.batches_split(items)] == [1, 1, 1]


def test_no_items_no_batches():
    assert list(broadcast.batches_split([])) == []


def test_a_heartbeat_says_how_far_each_partition_was_published():
    message = broadcast.heartbeat_message(consumer_id="c", lag={"t:0": 1}, published=[("t", 0, 7)])
    assert (message["lag"], message["published"]) == ({"t:0": 1}, [["t", 0, 7]])
    assert broadcast.heartbeat_message(consumer_id="c", lag={})["published"] == []


SERVED = frozenset({"t"})


def reference(**changes) -> dict:
    item = broadcast.reference_item(
        topic="t", partition=1, offset=9, prev=7, size=4_500_000, reason="too big"
    )
    item["ref"].update(changes)
    return item


def test_a_reference_names_a_position_and_passes_the_check():
    item = reference()
    assert broadcast.record_item_check(item, served=SERVED) is None
    assert broadcast.item_position(item) == ("t", 1, 9)
    assert broadcast.item_reference(item) == {"topic": "t", "partition": 1, "offset": 9, "reason": "too big"}
    event_item = broadcast.record_item({"topic": "t", "partition": 0, "offset": 3}, prev=3, size=1)
    assert broadcast.item_position(event_item) == ("t", 0, 3) and broadcast.item_reference(event_item) is None


def test_a_reference_is_checked_as_strictly_as_an_event():
    malformed = [
        reference(topic=None), reference(partition=-1), reference(partition=True), reference(offset=2**63),
        reference(offset="9"), reference(reason=None), reference(reason="x" * (broadcast.MAX_REASON + 1)),
        reference(offset=6),  # before its own predecessor position
        {**reference(), "event": {"kind": "domain_event"}},  # both ways at once
        {"prev": 7, "ref": ["t", 1, 9]},
        {"prev": 7, "ref": None},
    ]
    for item in malformed:
        assert broadcast.record_item_check(item, served=SERVED) == broadcast.FOREIGN_RECORD_MALFORMED, item
    assert broadcast.record_item_check(reference(topic="u"), served=SERVED) == broadcast.FOREIGN_RECORD_TOPIC


def test_a_long_reason_is_cut_to_the_bound_when_the_reference_is_made():
    item = broadcast.reference_item(topic="t", partition=0, offset=0, prev=0, size=1, reason="r" * 5000)
    assert len(item["ref"]["reason"]) == broadcast.MAX_REASON


def test_a_heartbeat_says_whether_publishing_is_stalled_and_the_check_holds_it_to_its_shape():
    calm = broadcast.heartbeat_message(consumer_id="c", lag={})
    stalled = broadcast.heartbeat_message(consumer_id="c", lag={}, stalled=(46.5, "OOM"))
    assert calm["stalled"] is None and stalled["stalled"] == {"seconds": 46.5, "reason": "OOM"}
    assert broadcast.heartbeat_check(calm) is None and broadcast.heartbeat_check(stalled) is None
    without = dict(calm)
    del without["stalled"]
    assert broadcast.heartbeat_check(without) is None, "consumers before the field existed"
    for bad in ({"seconds": -1, "reason": "r"}, {"seconds": float("nan"), "reason": "r"},
                {"seconds": True, "reason": "r"}, {"seconds": 1, "reason": 5}, {"seconds": 1}, "stalled", []):
        assert broadcast.heartbeat_check({**calm, "stalled": bad}) == broadcast.FOREIGN_MALFORMED, bad


def test_a_heartbeat_says_whether_the_schema_registry_is_out_of_reach_in_the_same_shape():
    calm = broadcast.heartbeat_message(consumer_id="c", lag={})
    out = broadcast.heartbeat_message(consumer_id="c", lag={}, registry=(12.0, "refused"))
    assert calm["registry"] is None and out["registry"] == {"seconds": 12.0, "reason": "refused"}
    assert broadcast.heartbeat_check(out) is None
    without = dict(calm)
    del without["registry"]
    assert broadcast.heartbeat_check(without) is None, "consumers before the field existed"
    for bad in ({"seconds": -1, "reason": "r"}, {"seconds": 1}, "down", []):
        assert broadcast.heartbeat_check({**calm, "registry": bad}) == broadcast.FOREIGN_MALFORMED, bad


def test_a_decoded_key_travels_only_with_a_registry_key_format():
    item = broadcast.record_item({
        "kind": "domain_event", "topic": "t", "partition": 0, "offset": 0, "timestamp": 0,
        "key": {"id": 7}, "key_format": "avro", "headers": {}, "type": None, "value": None,
        "value_format": "empty",
    }, prev=0, size=1)
    assert broadcast.record_item_check(item, served=frozenset({"t"})) is None
    item["event"]["key_format"] = "json"
    assert broadcast.record_item_check(item, served=frozenset({"t"})) == broadcast.FOREIGN_RECORD_MALFORMED
    del item["event"]["key_format"]
    assert broadcast.record_item_check(item, served=frozenset({"t"})) == broadcast.FOREIGN_RECORD_MALFORMED
