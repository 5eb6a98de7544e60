"""A real RTSP server for the tests: ``aio-rtsp-toolkit``'s file server in a process of its
own, publishing a folder of MP4 files as ``rtsp://127.0.0.1:PORT/<name>`` (RTSP over TCP,
interleaved RTP, H.264 packetised per RFC 6184 -- what an IP camera speaks). It paces frames
in real time and ends the session after ``?play_count=N`` plays (default once).

The port is found free (bound, released, then handed to the server); a server that could not
bind it exits, and the fixture tries another.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.ports import free_port

SERVE = (
    "import asyncio, sys\n"
    "from aio_rtsp_toolkit import server\n"
    "asyncio.run(server.serve(sys.argv[1], host='127.0.0.1', port=int(sys.argv[2])))\n"
)
START_TIMEOUT_S = 15.0


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class RtspServer:
    """``start()`` / ``stop()`` (a camera that reboots: stop, then start on the same port)."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, name: str, plays: int = 1) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{name}?play_count={plays}"

    def start(self) -> RtspServer:
        """Serve on ``self.port`` (another free one if it was taken meanwhile)."""
        why = ""
        for _ in range(3):
            self.process = subprocess.Popen(
                [sys.executable, "-c", SERVE, str(self.folder), str(self.port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            deadline = time.monotonic() + START_TIMEOUT_S
            while time.monotonic() < deadline and self.process.poll() is None:
                if _accepts(self.port):
                    return self
                time.sleep(0.05)
            why = self.stop()
            self.port = free_port()
        raise RuntimeError(f"the RTSP server did not start (tried 3 ports): {why[-500:]}")

    def stop(self) -> str:
        """Kill the server (a camera that loses power); returns what it wrote to stderr."""
        process, self.process = self.process, None
        if process is None:
            return ""
        if process.poll() is None:
            process.kill()
        _, err = process.communicate(timeout=10)
        return err.decode(errors="replace").strip()
