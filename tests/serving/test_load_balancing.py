"""One channel, two servers: pick_first sends every call to one, round_robin spreads them."""

import numpy as np
import pytest

from lmk_tf.image import Image
from lmk_tf.serving import client
from tests.serving.conftest import InProcessServer, install_version


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory, toy_export):
    base = str(tmp_path_factory.mktemp("replicas") / "toy")
    install_version(toy_export["2d"], base, 1)
    servers = [InProcessServer(base), InProcessServer(base)]  # two replicas of one model
    yield servers
    for server in servers:
        server.stop()


def predictions_per_server(servers):
    return [sum(s.value for f in _families(server) for s in f.samples
                if s.name == ":lmk:serving:request_count_total" and s.labels["signature"] == "serving_default")
            for server in servers]


def _families(server):
    from prometheus_client.parser import text_string_to_metric_families

    return text_string_to_metric_families(server.metrics.exposition().decode())


@pytest.mark.parametrize("lb_policy", ["round_robin", "pick_first"])
def test_calls_on_one_channel_reach_every_replica_only_with_round_robin(two_servers, lb_policy):
    # The name a headless Service gives resolves to every pod; an ipv4: target with two
    # addresses is the same thing without DNS.
    target = "ipv4:" + ",".join(s.address for s in two_servers)
    before = predictions_per_server(two_servers)
    channel = client.make_channel(target, lb_policy=lb_policy)
    stub = client.make_stub(channel)
    image = Image(np.random.default_rng(0).random((8, 9), np.float32), (1.0, 1.0), None, None, {})
    for _ in range(12):
        client.predict_image(stub, "toy", image, timeout=10, names=["a", "b", "c"])
    channel.close()
    served = [a - b for a, b in zip(predictions_per_server(two_servers), before)]
    assert sum(served) == 12
    if lb_policy == "round_robin":
        assert min(served) >= 4, served  # both replicas answer (6 and 6 once both are connected)
    else:
        assert sorted(served) == [0, 12], served
