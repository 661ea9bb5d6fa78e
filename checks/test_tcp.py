"""TCP: the ports the runbooks reach from here (``nc -z host port``) accept connections, quickly enough."""

import pytest

pytestmark = [pytest.mark.nightly]


@pytest.mark.smoke
@pytest.mark.p1
def test_tcp_port_accepts_connections(tcp_target, tcp, evidence):
    state, connect_ms = tcp.connect()
    evidence.expect("port_state", state, "==", "open")
    evidence.within("connect_ms", connect_ms, tcp_target.connect_ms)
