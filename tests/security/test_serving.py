"""The app's safe settings hold however it is started (ui/serving.py).

Two real servers, each started as `streamlit run /abs/path/app.py` from a folder outside the
project: one finds the project's .streamlit/config.toml beside app.py (Streamlit reads the
script's folder too), the other starts from a folder of links to the code with no .streamlit at
all, so Streamlit's defaults apply, as when the config file is missing. Tests talk to them only
through 127.0.0.1: a websocket session (what a browser opens), a websocket handshake carrying
another Host header, and an upload request.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.streamlit_server import free_port, streamlit_server
from ui import serving

ROOT = Path(__file__).resolve().parents[2]
CODE = ("app.py", "ui", "pages", "interp", "steering")  # what a copy of the app needs, without .streamlit/


# ---------------------------------------------------------------------------------------------
# The rules, without a server


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("localhost", True), ("LOCALHOST.", True), ("::1", True),
     ("[::1]", True), ("app.localhost", True), ("0.0.0.0", False), ("::", False), ("", False), (None, False),
     ("192.168.1.5", False), ("evil.example", False), ("127.0.0.1.evil.example", False)],
)  # fmt: skip
def test_is_loopback(host, loopback):
    assert serving.is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("address", "host", "refused"),
    [("127.0.0.1", "127.0.0.1:8501", None), ("localhost", "localhost:8501", None), ("unix:///tmp/s.sock", None, None),
     (None, None, "every network interface"), ("0.0.0.0", "127.0.0.1:8501", "address 0.0.0.0"),
     ("192.168.1.5", None, "other machines can reach it"), ("127.0.0.1", "evil.example:8501", "DNS rebinding"),
     ("127.0.0.1", "", "DNS rebinding")],
)  # fmt: skip
def test_serving_problem(address, host, refused, monkeypatch):
    monkeypatch.delenv(serving.ENV_ALLOW_REMOTE, raising=False)
    problem = serving.serving_problem(address, host)
    assert (problem is None) if refused is None else (refused in problem)


def test_the_user_can_opt_in_to_serving_other_machines(monkeypatch):
    monkeypatch.setenv(serving.ENV_ALLOW_REMOTE, "1")
    assert serving.serving_problem("0.0.0.0", "my-workstation:8501") is None


def test_safe_options_fill_in_what_the_user_did_not_set(monkeypatch):
    from streamlit import config

    calls = {}
    monkeypatch.setattr(config, "is_manually_set", lambda key: key == "server.maxUploadSize")  # the user chose this one
    monkeypatch.setattr(config, "set_option", lambda key, value, where_defined: calls.__setitem__(key, value))
    monkeypatch.delenv(serving.ENV_ALLOW_REMOTE, raising=False)
    serving.apply_safe_options()
    assert calls == {"client.showErrorDetails": "none", "browser.gatherUsageStats": False,
                     "server.allowedHosts": ["localhost", "127.0.0.1", "::1"]}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Real servers


class Server:
    def __init__(self, process: subprocess.Popen, port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log

    def listening_on(self) -> set[str]:
        connections = psutil.Process(self.process.pid).net_connections(kind="inet")
        return {c.laddr.ip for c in connections if c.status == psutil.CONN_LISTEN and c.laddr.port == self.port}

    @contextlib.contextmanager
    def session(self, host: str | None = None) -> Iterator[tuple[str, list[str]]]:
        """A session opened as a browser would: its id and the text of everything the script drew.

        The session stays open inside the ``with``. ``host`` is the name the browser used (the Host
        header); the connection always goes to 127.0.0.1.
        """
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
        from websockets.sync.client import connect

        url = f"ws://{host or f'127.0.0.1:{self.port}'}/_stcore/stream"
        texts, session_id = [], ""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        with connect(url, sock=sock, subprotocols=["streamlit"], open_timeout=30, max_size=None) as ws:
            back = BackMsg()
            back.rerun_script.query_string = ""
            ws.send(back.SerializeToString())
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                message = ForwardMsg()
                message.ParseFromString(ws.recv(timeout=120))
                kind = message.WhichOneof("type")
                if kind == "new_session":
                    session_id = message.new_session.initialize.session_id
                elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
                    element = message.delta.new_element
                    texts.append(str(getattr(getattr(element, element.WhichOneof("type")), "body", "")))
                elif kind == "script_finished":
                    yield session_id, texts
                    return
        raise AssertionError(f"the script did not finish; server log:\n{self.log.read_text()[-3000:]}")

    def websocket_status(self, host: str) -> str:
        """The status line the server answers a websocket handshake sent to 127.0.0.1 with this Host header."""
        request = (
            f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: streamlit\r\nOrigin: http://{host}\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", self.port), timeout=20) as sock:
            sock.sendall(request.encode())
            return sock.recv(4096).decode("latin-1").split("\r\n")[0]

    def upload_status(self, session_id: str, megabytes: int) -> int:
        """Announce an upload of this size (the body is never sent) and return the status code."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.port}/_stcore/health", timeout=20
        ) as response:  # sets the XSRF cookie
            cookie = next(v for k, v in response.headers.items() if k.lower() == "set-cookie" and "_streamlit_xsrf" in v)
        token = cookie.split(";")[0].split("=", 1)[1]
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            connection.putrequest("PUT", f"/_stcore/upload_file/{session_id}/file-1")
            connection.putheader("Cookie", f"_streamlit_xsrf={token}")
            connection.putheader("X-Xsrftoken", token)
            connection.putheader("Content-Type", "multipart/form-data; boundary=x")
            connection.putheader("Content-Length", str(megabytes * 1024 * 1024))
            connection.endheaders()
            return connection.getresponse().status
        finally:
            connection.close()


@contextlib.contextmanager
def started(app_dir: Path, cwd: Path, env: dict[str, str], *flags: str) -> Iterator[Server]:
    """`streamlit run <app_dir>/app.py` from ``cwd``; stopped (terminate, then kill) within 30 s."""
    port = free_port()
    log = cwd / f"streamlit-{port}.log"
    flags = ("--server.fileWatcherType", "none", *flags)
    with streamlit_server(app_dir / "app.py", cwd=cwd, env=env, log=log, port=port, flags=flags) as process:
        yield Server(process, port, log)


@pytest.fixture
def elsewhere(tmp_path: Path, tiny_llama_dir: Path) -> tuple[Path, dict[str, str]]:
    """A working directory outside the project, and an environment that loads the tiny model."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_") and k != serving.ENV_ALLOW_REMOTE}
    env.update(HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", STEERSCOPE_DATA=str(tmp_path / "data"),
               STEERSCOPE_MODEL=str(tiny_llama_dir), HOME=str(tmp_path / "home"))  # fmt: skip
    return cwd, env


def test_started_from_another_folder_it_serves_this_machine_only(elsewhere):
    cwd, env = elsewhere
    with started(ROOT, cwd, env) as server:
        assert server.listening_on() == {"127.0.0.1"}
        with server.session() as (session_id, texts):
            assert "Steerscope" in texts and not any("is not serving" in text for text in texts)
            # Set by app.py at run time, not by config.toml: a websocket under a foreign name is refused,
            # and so is an upload over 20 MB (Streamlit's default is 200).
            assert " 101 " in server.websocket_status(f"127.0.0.1:{server.port}")
            assert " 101 " not in server.websocket_status(f"rebound.example:{server.port}")
            assert server.upload_status(session_id, megabytes=50) == 413


def test_without_its_config_file_it_refuses_to_serve_every_interface(elsewhere):
    cwd, env = elsewhere
    bare = cwd / "bare-copy"  # the code, linked, with no .streamlit/ beside it: Streamlit's defaults apply
    bare.mkdir()
    for name in CODE:
        (bare / name).symlink_to(ROOT / name)
    with started(bare, cwd, env) as server:
        assert server.listening_on() - {"127.0.0.1", "::1"}, "expected Streamlit's default (every interface)"
        with server.session() as (session_id, texts):
            page = "\n".join(texts)
            assert "Steerscope is not serving this address" in page and "every network interface" in page
            assert "make app" in page and "--server.address 127.0.0.1" in page and serving.ENV_ALLOW_REMOTE in page
            assert not any("parameters" in text for text in texts)  # no model was loaded for this session
            # The run-time settings are in force even so: 20 MB uploads, loopback Host names only.
            assert server.upload_status(session_id, megabytes=50) == 413
            assert " 101 " not in server.websocket_status(f"rebound.example:{server.port}")
    assert "refusing to serve" in server.log.read_text()


def test_a_session_reached_under_a_foreign_name_is_refused(elsewhere):
    """DNS rebinding on a fresh server: the first websocket (before app.py sets allowedHosts) still gets no app."""
    cwd, env = elsewhere
    with started(ROOT, cwd, env) as server:
        assert " 101 " in server.websocket_status(f"rebound.example:{server.port}")  # Streamlit alone lets it in
        with server.session(host=f"rebound.example:{server.port}") as (_, texts):
            assert any("DNS rebinding" in text for text in texts)
            assert not any("parameters" in text for text in texts)
