"""Every Redis client is made from REDIS_URL the same way: the channel layer's and the others."""

import pytest
from channels_redis.core import RedisChannelLayer
from channels_redis.utils import create_pool
from redis.asyncio.sentinel import SentinelConnectionPool

from crm_events.config import redis_config
from crm_events.redis_clients import redis_connected

SENTINEL_URL = "redis+sentinel://app:pw@127.0.0.1:1,127.0.0.1:2/mymaster/4"
SOCKETS = {"socket_timeout": 15.0, "socket_connect_timeout": 5.0}


def test_a_sentinel_url_given_to_channels_redis_as_an_address_is_refused():
    """What REDIS_URL=redis+sentinel://... did before it was parsed: redis-py knows no such scheme."""
    with pytest.raises(ValueError, match="Redis URL must specify one of the following schemes"):
        create_pool({"address": SENTINEL_URL})


def test_the_channel_layer_asks_the_sentinels_for_the_master(settings):
    settings.REDIS_URL = SENTINEL_URL
    layer = RedisChannelLayer(hosts=[redis_config().connection_options(**SOCKETS)])
    pool = layer.create_pool(0)
    assert isinstance(pool, SentinelConnectionPool) and pool.is_master
    assert pool.service_name == "mymaster"
    assert pool.connection_kwargs["db"] == 4 and pool.connection_kwargs["password"] == "pw"
    assert [
        (s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
        for s in pool.sentinel_manager.sentinels
    ] == [("127.0.0.1", 1), ("127.0.0.1", 2)]


async def test_other_clients_are_made_the_same_way(settings):
    settings.REDIS_URL = SENTINEL_URL
    async with redis_connected(redis_config(), timeout=1.0) as client:
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "mymaster"
        options = pool.connection_kwargs
        assert options["socket_timeout"] == options["socket_connect_timeout"] == 1.0
        assert pool.sentinel_manager.sentinel_kwargs == {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}


async def test_a_plain_url_makes_a_plain_client(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/3"
    async with redis_connected(redis_config(), timeout=1.0) as client:
        assert not isinstance(client.connection_pool, SentinelConnectionPool)
        assert client.connection_pool.connection_kwargs["db"] == 3
