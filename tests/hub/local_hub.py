"""A tiny Hugging Face Hub on 127.0.0.1 that serves model repos for the download tests.

It implements exactly what ``huggingface_hub.snapshot_download`` (2.x) calls:

- ``GET /api/models/{repo}/revision/{rev}``: JSON with ``sha`` and ``siblings``;
- ``GET /api/models/{repo}/tree/{sha}?recursive=...&expand=...``: the file list (``oid``, ``size``,
  ``lfs`` for weights and images, like the real hub);
- ``HEAD``/``GET /{repo}/resolve/{rev}/{file}``: the file, with ``ETag`` (git sha1, or the sha256
  for LFS files), ``X-Repo-Commit`` (40 hex) and ``Content-Length``;
- 404 with ``X-Error-Code`` ``RepoNotFound``, ``RevisionNotFound`` or ``EntryNotFound``.

Every request path is recorded in ``LocalHub.requests``, so tests can assert that offline mode
made none.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".png", ".bin", ".pt", ".pkl")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    revisions: dict[str, tuple[str, dict[str, bytes]]] = field(default_factory=dict)  # name -> (sha, files)

    def resolve(self, rev: str) -> tuple[str, dict[str, bytes]] | None:
        if rev in self.revisions:
            return self.revisions[rev]
        return next((v for v in self.revisions.values() if v[0] == rev), None)


class LocalHub:
    """Start with ``LocalHub()``; ``add_folder`` publishes a folder; ``close()`` stops it."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add_files(self, repo_id: str, files: dict[str, bytes], revision: str = "main") -> str:
        """Publish ``files`` as ``revision`` of ``repo_id``; returns the (fake) commit sha."""
        digest = hashlib.sha1(repo_id.encode() + revision.encode())
        for name in sorted(files):
            digest.update(name.encode() + files[name])
        sha = digest.hexdigest()
        self.repos.setdefault(repo_id, Repo()).revisions[revision] = (sha, dict(files))
        return sha

    def add_folder(self, repo_id: str, folder: str | Path, revision: str = "main") -> str:
        folder = Path(folder)
        return self.add_files(repo_id, {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}, revision)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ HTTP
    def _handler_class(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_HEAD(self):
                self._serve(body=False)

            def do_GET(self):
                self._serve(body=True)

            def _send(self, status: int, data: bytes = b"", headers: dict | None = None, body: bool = True):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def _error(self, code: str, body: bool, commit: str | None = None):
                headers = {"X-Error-Code": code, "X-Error-Message": code, "Content-Type": "application/json"}
                if commit:
                    headers["X-Repo-Commit"] = commit
                self._send(404, json.dumps({"error": code}).encode(), headers, body)

            def _serve(self, body: bool):
                url = urlsplit(self.path)
                path = unquote(url.path)
                hub.requests.append(f"{self.command} {self.path}")
                parts = path.strip("/").split("/")
                if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("revision", "tree"):
                    repo_id, kind, rev = "/".join(parts[2:4]), parts[4], "/".join(parts[5:])
                    repo = hub.repos.get(repo_id)
                    if repo is None:
                        return self._error("RepoNotFound", body)
                    found = repo.resolve(rev)
                    if found is None:
                        return self._error("RevisionNotFound", body)
                    sha, files = found
                    if kind == "revision":
                        info = {"id": repo_id, "modelId": repo_id, "sha": sha, "private": False,
                                "siblings": [{"rfilename": n} for n in sorted(files)]}
                    else:
                        info = [_tree_entry(n, d) for n, d in sorted(files.items())]
                    return self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"}, body)
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo_id, rev, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                    repo = hub.repos.get(repo_id)
                    if repo is None:
                        return self._error("RepoNotFound", body)
                    found = repo.resolve(rev)
                    if found is None:
                        return self._error("RevisionNotFound", body)
                    sha, files = found
                    if filename not in files:
                        return self._error("EntryNotFound", body, commit=sha)
                    data = files[filename]
                    etag = hashlib.sha256(data).hexdigest() if filename.endswith(LFS_SUFFIXES) else git_blob_sha1(data)
                    return self._send(200, data, {"ETag": f'"{etag}"', "X-Repo-Commit": sha,
                                                  "Content-Type": "application/octet-stream"}, body)
                return self._error("RepoNotFound", body)

        return Handler


def _tree_entry(name: str, data: bytes) -> dict:
    entry = {"type": "file", "path": name, "size": len(data), "oid": git_blob_sha1(data)}
    if name.endswith(LFS_SUFFIXES):
        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
    return entry
