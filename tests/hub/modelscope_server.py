"""A ModelScope test server: just the calls modelscope 1.40's `snapshot_download` makes.

No server package speaks ModelScope's API, and its SDK reads MODELSCOPE_ENDPOINT as a full
URL (http allowed), so this stdlib server on 127.0.0.1 stands in for www.modelscope.cn:

* `GET /api/v1/models/{id}/repo/files?Revision=...&Recursive=True`: the file list;
* `GET /api/v1/datasets/{id}/repo/tree?...&PageNumber=N&PageSize=M`: the same, paged;
* `GET /api/v1/{models,datasets}/{id}/repo?Revision=...&FilePath=...`: one file;
* anything else (`/api/v1/repos/internalAccelerationInfo` included): 404, which the SDK
  tolerates. Every request is kept in `server.requests`, so a test can see what was asked.

Two ways to fail, for the tests of failing sources: `fail_with=500` answers every request
with that status; `drop_after=N` sends a file's headers and its first N bytes, then drops
the connection.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

LOOPBACK = "127.0.0.1"


def _listing(folder: Path) -> list[dict]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts)
    return [
        {
            "Name": path.name,
            "Path": path.relative_to(folder).as_posix(),
            "Type": "blob",
            "Size": path.stat().st_size,
            "Sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "Revision": "master",
        }
        for path in files
    ]


class ModelScopeHandler(http.server.BaseHTTPRequestHandler):
    """Answers from `self.server.repos`: {("models"|"datasets", "org/name"): folder}."""

    def log_message(self, *args) -> None:  # quiet: the tests read server.requests instead
        pass

    def _json(self, payload: dict, status: int = 200) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _not_found(self) -> None:
        self._json({"Code": 404, "Message": "not found", "Success": False}, status=404)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        self.server.requests.append(self.path)
        if self.server.fail_with:
            return self._json({"Code": self.server.fail_with}, status=self.server.fail_with)
        parts = url.path.strip("/").split("/")
        # api / v1 / models|datasets / org / name / repo [/ files|tree]
        if len(parts) < 6 or parts[:2] != ["api", "v1"] or parts[5] != "repo":
            return self._not_found()
        folder = self.server.repos.get((parts[2], f"{parts[3]}/{parts[4]}"))
        if folder is None:
            return self._not_found()
        if parts[6:] in (["files"], ["tree"]):
            files = _listing(folder)
            if parts[6] == "tree":  # datasets page through the listing
                size = int(query.get("PageSize", 200))
                start = (int(query.get("PageNumber", 1)) - 1) * size
                files = files[start : start + size]
            return self._json({"Code": 200, "Success": True, "Data": {"Files": files}})
        if parts[6:] or "FilePath" not in query:
            return self._not_found()
        path = (folder / query["FilePath"]).resolve()
        if not path.is_file() or not path.is_relative_to(folder.resolve()):
            return self._not_found()
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = self.server.drop_after
        if cut is not None and len(body) > cut:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@contextlib.contextmanager
def modelscope_server(
    models: dict[str, Path],
    datasets: dict[str, Path],
    fail_with: int | None = None,
    drop_after: int | None = None,
) -> Iterator[http.server.ThreadingHTTPServer]:
    """The server on a free loopback port, serving `models` and `datasets` ({id: folder});
    yields it (`server.url` is the MODELSCOPE_ENDPOINT to set) and stops it after."""
    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), ModelScopeHandler)
    server.daemon_threads = True
    server.repos = {("models", k): v for k, v in models.items()}
    server.repos |= {("datasets", k): v for k, v in datasets.items()}
    server.requests = []
    server.fail_with, server.drop_after = fail_with, drop_after
    server.url = f"http://{LOOPBACK}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
