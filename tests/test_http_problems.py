"""What a user reads when the wire fails is ours, not the HTTP library's wording."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import requests

from tap_commerce_exports.http.problems import transport_problem


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


@pytest.fixture
def slamming_server() -> Iterator[int]:
    """Accepts a connection and closes it at once, without an answer."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn = listener.accept()[0]
            except OSError:
                continue
            conn.recv(65536)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


def failure_of(url: str, timeout: float = 5.0) -> BaseException:
    with pytest.raises((requests.ConnectionError, requests.Timeout)) as raised:
        requests.get(url, timeout=timeout)
    return raised.value


def test_a_closed_port_is_connection_refused() -> None:
    assert transport_problem(failure_of(f"http://127.0.0.1:{closed_port()}/")) == "connection refused"


def test_a_server_that_never_answers_is_a_timeout(silent_server: int) -> None:
    problem = transport_problem(failure_of(f"http://127.0.0.1:{silent_server}/", timeout=0.3))
    assert problem == "the answer timed out"


def test_a_server_that_hangs_up_is_said_so(slamming_server: int) -> None:
    problem = transport_problem(failure_of(f"http://127.0.0.1:{slamming_server}/"))
    assert problem in {"the connection was closed by the other side", "the connection was reset"}


def test_no_library_names_reach_the_phrase() -> None:
    phrases = {
        transport_problem(requests.ConnectionError("HTTPConnectionPool(host='x', port=1): Max retries")),
        transport_problem(requests.exceptions.ChunkedEncodingError("IncompleteRead(0 bytes read)")),
    }
    assert all("Pool" not in p and "Error" not in p and "Incomplete" not in p for p in phrases)
