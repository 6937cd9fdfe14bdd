"""A client for REDIS_URL: one Redis, or a Redis Cluster named `redis+cluster://h1:p1,h2:p2`.

Every key Switchboard keeps names its slot with a hash tag (`{...}`), and no
script touches keys of two slots, so the same code runs on either: the
cluster client routes each command by its keys, and follows MOVED and
failovers. The startup nodes are only where the client first asks for the
cluster's map; one live node of them is enough.
"""
from __future__ import annotations

import socket
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.cluster import ClusterNode, RedisCluster

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

AnyRedis = redis.Redis | RedisCluster

# A host that vanished without closing its connections (down, or cut off) is noticed within
# about 25 s on a connection that only waits (a listener), not after the system's two hours;
# and a connect to it gives up after 5 s rather than the system's two minutes.
_LIVENESS = {
    "socket_connect_timeout": 5.0,
    "socket_keepalive": True,
    "socket_keepalive_options": {opt: value for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5),
                                                                 ("TCP_KEEPCNT", 3))
                                 if (opt := getattr(socket, name, None)) is not None},
}


def is_cluster(url: str | None) -> bool:
    return bool(url) and urlsplit(url).scheme in CLUSTER_SCHEMES


def _cluster(url: str, **options) -> RedisCluster:
    parts = urlsplit(url)
    auth, _, hosts = parts.netloc.rpartition("@")
    nodes = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":")
        nodes.append(ClusterNode(name or host, int(port or 6379)))
    if not nodes:
        raise ValueError(f"no node in {url!r}")
    first = nodes[0]
    # The first node as a plain URL carries the credentials, TLS and options to every node.
    netloc = f"{auth}@{first.host}:{first.port}" if auth else f"{first.host}:{first.port}"
    node_url = urlunsplit((CLUSTER_SCHEMES[parts.scheme], netloc, "", parts.query, ""))
    return RedisCluster(url=node_url, startup_nodes=nodes[1:], **options)


def connect(url: str, max_connections: int = 64, timeout: float = 20.0) -> AnyRedis:
    """A client with a blocking pool (per node on a cluster): under gevent thousands of
    greenlets may call Redis at once; they wait for a connection instead of failing
    with "Too many connections"."""
    if is_cluster(url):
        return _cluster(url, connection_pool_class=redis.BlockingConnectionPool,
                        max_connections=max_connections, timeout=timeout, **_LIVENESS)
    return redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout, health_check_interval=0, **_LIVENESS))
