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
