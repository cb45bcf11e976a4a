"""The channel layer: channels_redis' Redis layer, with a group send of one round trip.

channels_redis sends to a group in four round trips to Redis (drop the group's expired members,
read the members, drop each member channel's expired messages, then a script that adds the
message to each channel with room), and sends its script's text every time. The consumer sends
every batch of records this way, and each round trip it waits for is a large part of what a
batch costs it (the benchmark page has the figures). Here one script, run by its digest
(EVALSHA; loaded again when Redis has forgotten it, after a restart), reads the members and
adds the message to each of their channels: Python packs the message once, and the script
appends the only part that differs per channel (`__asgi_channel__`, the channels sharing a
key). Redis ends up holding exactly what channels_redis would have written, in the same order,
so receivers (channels_redis' own `receive`) see no difference; only the sending changed.

That needs every channel on the group's one Redis, and messages channels_redis stores as plain
msgpack: with several hosts, encryption, another serializer or capacities per channel, the
layer sends as channels_redis does.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

import msgpack
from channels_redis.core import RedisChannelLayer as ChannelsRedisLayer
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

logger = logging.getLogger(__name__)

# Where channels_redis' receivers find the local channels a message is for.
CHANNEL_FIELD = "__asgi_channel__"

# KEYS[1] is the group's key. ARGV: the message packed up to its channel field's value, the
# layer's key prefix, the capacity, the time now, the newest score of an expired member, of an
# expired message, and the expiry in seconds. Members are read as channels_redis reads them
# after dropping the expired ones, and grouped by key in the order read (a process's specific
# channels share one key, and one message names them all). Expired messages are not counted
# against the capacity and are removed last, with the expired members: a script's first write
# is the one Redis refuses when it is out of memory (later ones pass, for the script's
# atomicity), so the first write must be an add, as in channels_redis' script, or a full Redis
# would take any message.
GROUP_SEND_LUA = """
local head, prefix, capacity = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now, member_expired, expired, expiry = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. member_expired, '+inf')
local keys, channels = {}, {}
for _, channel in ipairs(members) do
    local bang = string.find(channel, '!', 1, true)
    local key = prefix .. (bang and string.sub(channel, 1, bang) or channel)
    if channels[key] == nil then
        channels[key] = {}
        keys[#keys + 1] = key
    end
    table.insert(channels[key], channel)
end
local over_capacity = 0
for _, key in ipairs(keys) do
    local held = redis.call('ZCOUNT', key, '-inf', '+inf') - redis.call('ZCOUNT', key, 0, expired)
    if held < capacity then
        redis.call('ZADD', key, now, head .. cmsgpack.pack(channels[key]))
        redis.call('EXPIRE', key, expiry)
    else
        over_capacity = over_capacity + 1
    end
end
for _, key in ipairs(keys) do
    redis.call('ZREMRANGEBYSCORE', key, 0, expired)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, member_expired)
return {over_capacity, #members}
"""


class RedisChannelLayer(ChannelsRedisLayer):
    """channels_redis' layer whose `group_send` costs one round trip instead of four."""

    def __init__(
        self, *, symmetric_encryption_keys: Any = None, random_prefix_length: int = 12,
        serializer_format: str = "msgpack", channel_capacity: Any = None, **config: Any,
    ) -> None:
        super().__init__(
            symmetric_encryption_keys=symmetric_encryption_keys, random_prefix_length=random_prefix_length,
            serializer_format=serializer_format, channel_capacity=channel_capacity, **config,
        )
        self.one_trip = (self.ring_size == 1 and not symmetric_encryption_keys
                         and serializer_format == "msgpack" and not channel_capacity)
        self.random_prefix_length = random_prefix_length
        self._packer = msgpack.Packer()  # as channels_redis' msgpack.packb, without a Packer per call
        self._script: AsyncScript | None = None

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        if not self.one_trip:
            await super().group_send(group, message)
            return
        assert self.require_valid_group_name(group), "Group name not valid"
        connection = self.connection(0)
        now = time.time()
        over_capacity, members = await self._group_script(connection)(
            keys=[self._group_key(group)],
            args=[self._message_head(message), self.prefix, self.capacity, now,
                  int(now) - self.group_expiry, int(now) - int(self.expiry), self.expiry],
            client=connection,
        )
        if over_capacity > 0:
            logger.info("%s of %s channels over capacity in group %s", over_capacity, members, group)

    def _group_script(self, connection: Redis) -> AsyncScript:
        if self._script is None:
            self._script = connection.register_script(GROUP_SEND_LUA)
        return self._script

    def _message_head(self, message: dict[str, Any]) -> bytes:
        """The bytes channels_redis stores for `message` (a random prefix, then the message with
        its channel field last) up to the channel field's value, which the script appends."""
        fields = [(name, value) for name, value in message.items() if name != CHANNEL_FIELD]
        pack = self._packer.pack
        parts = [random.getrandbits(8 * self.random_prefix_length).to_bytes(self.random_prefix_length, "big"),
                 self._packer.pack_map_header(len(fields) + 1)]
        for name, value in fields:
            parts += (pack(name), pack(value))
        parts.append(pack(CHANNEL_FIELD))
        return b"".join(parts)
