import socket

import redis

from gpmas.embedded_redis import EmbeddedRedis


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_embedded_redis_starts_with_aof_and_stops_cleanly(tmp_path):
    server = EmbeddedRedis(tmp_path).start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        config = client.config_get("appendonly") | client.config_get("maxmemory-policy")
        assert config == {"appendonly": "yes", "maxmemory-policy": "noeviction"}
        assert client.get("k") == b"v"
    finally:
        server.stop()
    assert server.process.returncode == 0
    assert not port_open(server.port)


def test_embedded_redis_keeps_data_across_restart_through_aof(tmp_path):
    with EmbeddedRedis(tmp_path) as server:
        redis.Redis.from_url(server.url).set("kept", "1")
        port = server.port
    with EmbeddedRedis(tmp_path, port) as again:
        assert redis.Redis.from_url(again.url).get("kept") == b"1"


def test_embedded_redis_refuses_a_port_in_use(tmp_path):
    with EmbeddedRedis(tmp_path / "a") as first:
        second = EmbeddedRedis(tmp_path / "b", first.port)
        try:
            second.start()
        except RuntimeError as exc:
            assert "already in use" in str(exc)
        else:
            raise AssertionError("a second server started on a busy port")
