"""The downloader against a loopback HTTP server with injected faults (no network)."""

from __future__ import annotations

import hashlib
import json
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from visdial_lg.cli import main as cli_main
from visdial_lg.download.checksum_lock import read_lock, record_in_lock
from visdial_lg.download.fetch import ChecksumError, DownloadError, download
from visdial_lg.core.errors import InputFormatError

BODY = random.Random(0).randbytes(300_000)
SHA = hashlib.sha256(BODY).hexdigest()
FAST = dict(backoff_s=0.01, timeout_s=5.0, progress=False)  # keeps every retry loop short


class FaultyHandler(BaseHTTPRequestHandler):
    """Serves `server.routes[path]`: {body, type, ranges, etag, drops: [bytes sent before
    the connection is cut, per request], statuses: [error status per request], reset: bool,
    stall_after: bytes sent before the reply hangs until `server.release` is set}."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get("Range")))
        self.server.if_ranges.append(self.headers.get("If-Range"))
        route = self.server.routes.get(self.path)
        if route is None:
            return self._reply(404, b"<html>not found</html>", "text/html")
        if route.get("statuses"):
            return self._reply(route["statuses"].pop(0), b"busy", "text/plain")
        body, start = route["body"], 0
        header_range = self.headers.get("Range")
        unchanged = self.headers.get("If-Range", route.get("etag")) == route.get("etag")
        if header_range and route.get("ranges", True) and unchanged:
            start = int(header_range.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", route.get("type", "application/zip"))
        self.send_header("Content-Length", str(len(body) - start))
        if route.get("etag"):
            self.send_header("ETag", route["etag"])
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        if route.get("stall_after"):
            self.wfile.write(body[start : start + route["stall_after"]])
            self.wfile.flush()
            self.server.release.wait(timeout=20)  # bounded: the fixture releases it at the end
            self.close_connection = True
            return
        drops = route.get("drops")
        if drops:  # send part of the body, then cut the connection
            self.wfile.write(body[start : start + drops.pop(0)])
            self.wfile.flush()
            if route.get("reset"):  # RST instead of an orderly close
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body[start:])

    def _reply(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FaultyHandler)
    srv.daemon_threads = True
    srv.routes, srv.requests, srv.if_ranges, srv.release = {}, [], [], threading.Event()
    srv.url = lambda path: f"http://127.0.0.1:{srv.server_port}{path}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_plain_download_is_verified_and_renamed(server, tmp_path):
    server.routes["/f.zip"] = {"body": BODY}
    out = tmp_path / "f.zip"
    assert download(server.url("/f.zip"), out, sha256=SHA, size=len(BODY), **FAST) == SHA
    assert out.read_bytes() == BODY and leftovers(tmp_path) == ["f.zip"]


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
def test_dropped_connection_resumes_with_range(server, tmp_path, reset):
    server.routes["/f.zip"] = {"body": BODY, "drops": [100_000, 70_000], "reset": reset}
    out = tmp_path / "f.zip"
    download(server.url("/f.zip"), out, sha256=SHA, **FAST)
    assert out.read_bytes() == BODY
    ranges = [r for _, r in server.requests]
    assert ranges[0] is None and len(ranges) == 3
    assert all(r.startswith("bytes=") for r in ranges[1:])  # resumed, not restarted
    assert int(ranges[1][6:-1]) <= 100_000 < int(ranges[2][6:-1])


def test_part_file_of_an_interrupted_run_is_resumed(server, tmp_path, capsys):
    server.routes["/f.zip"] = {"body": BODY, "drops": [1234, 0], "etag": '"v1"'}
    out = tmp_path / "f.zip"
    with pytest.raises(DownloadError, match="giving up"):  # the first run ends with 1234 bytes
        download(server.url("/f.zip"), out, sha256=SHA, retries=0, **FAST)
    assert (tmp_path / "f.zip.part").stat().st_size == 1234 and not out.exists()
    server.requests.clear()
    download(server.url("/f.zip"), out, sha256=SHA, **FAST)  # the next run resumes
    assert out.read_bytes() == BODY and server.requests == [("/f.zip", "bytes=1234-")]
    assert server.if_ranges[-1] == '"v1"' and "resuming" in capsys.readouterr().err
    assert leftovers(tmp_path) == ["f.zip"]  # the .part and its sidecar are gone


def test_killed_download_process_resumes(server, tmp_path):
    server.routes["/f.zip"] = {"body": BODY, "stall_after": 100_000}
    out, part = tmp_path / "f.zip", tmp_path / "f.zip.part"
    cmd = [sys.executable, "-m", "visdial_lg", "download", server.url("/f.zip"), "--out", str(out), "--sha256", SHA]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while (not part.exists() or part.stat().st_size < 100_000) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.kill()  # SIGKILL: no cleanup code runs
        proc.wait(timeout=10)
    assert part.stat().st_size == 100_000 and not out.exists()
    server.routes["/f.zip"] = {"body": BODY}
    download(server.url("/f.zip"), out, sha256=SHA, **FAST)
    assert out.read_bytes() == BODY and server.requests[-1] == ("/f.zip", "bytes=100000-")


def test_file_changed_on_the_server_since_the_part_began_restarts(server, tmp_path):
    server.routes["/f.zip"] = {"body": BODY, "drops": [1234, 0], "etag": '"v1"'}
    out = tmp_path / "f.zip"
    with pytest.raises(DownloadError):
        download(server.url("/f.zip"), out, retries=0, **FAST)
    new_body = BODY[::-1]
    server.routes["/f.zip"] = {"body": new_body, "etag": '"v2"'}  # If-Range "v1" fails: the whole file
    download(server.url("/f.zip"), out, lock=tmp_path / "checksums.lock", **FAST)
    assert out.read_bytes() == new_body
    assert read_lock(tmp_path / "checksums.lock")[out.name]["sha256"] == hashlib.sha256(new_body).hexdigest()


def test_part_file_from_another_url_is_not_resumed(server, tmp_path, capsys):
    server.routes["/f.zip"] = {"body": BODY}
    (tmp_path / "f.zip.part").write_bytes(b"bytes of unknown origin")
    download(server.url("/f.zip"), tmp_path / "f.zip", **FAST)
    assert (tmp_path / "f.zip").read_bytes() == BODY and server.requests == [("/f.zip", None)]
    assert "does not come from" in capsys.readouterr().err


def test_complete_part_file_needs_only_verification(server, tmp_path):
    server.routes["/f.zip"] = {"body": BODY, "drops": [len(BODY)]}  # all bytes, then the connection dies
    url, out = server.url("/f.zip"), tmp_path / "f.zip"
    (tmp_path / "f.zip.part").write_bytes(BODY)
    (tmp_path / "f.zip.part.json").write_text(json.dumps({"url": url, "validator": None}))
    download(url, out, sha256=SHA, **FAST)  # no size given: the server answers 416
    assert out.read_bytes() == BODY and server.requests == [("/f.zip", f"bytes={len(BODY)}-")]


def test_server_without_range_support_restarts_from_zero(server, tmp_path, capsys):
    server.routes["/f.zip"] = {"body": BODY, "ranges": False, "drops": [50_000]}
    out = tmp_path / "f.zip"
    download(server.url("/f.zip"), out, sha256=SHA, **FAST)
    assert out.read_bytes() == BODY and len(server.requests) == 2
    assert "not the requested range" in capsys.readouterr().err


def test_server_without_range_that_keeps_dropping_gives_up(server, tmp_path):
    server.routes["/f.zip"] = {"body": BODY, "ranges": False, "drops": [50_000] * 10}
    with pytest.raises(DownloadError, match="giving up after 2 retries"):
        download(server.url("/f.zip"), tmp_path / "f.zip", retries=2, **FAST)
    assert len(server.requests) == 4  # the first drop is progress, then 3 without
    assert not (tmp_path / "f.zip").exists()


def test_wrong_bytes_are_rejected_and_deleted(server, tmp_path):
    server.routes["/f.zip"] = {"body": BODY[:-1] + b"\x00"}
    with pytest.raises(ChecksumError, match="does not match"):
        download(server.url("/f.zip"), tmp_path / "f.zip", sha256=SHA, **FAST)
    assert leftovers(tmp_path) == []  # neither the output nor a .part to resume


def test_size_announced_by_the_server_is_checked_first(server, tmp_path):
    server.routes["/f.zip"] = {"body": BODY}
    with pytest.raises(ChecksumError, match="expects 299999"):
        download(server.url("/f.zip"), tmp_path / "f.zip", size=len(BODY) - 1, **FAST)
    assert leftovers(tmp_path) == []


def test_404_is_a_one_line_error(server, tmp_path, capsys):
    out = tmp_path / "f.zip"
    assert cli_main(["download", server.url("/missing.zip"), "--out", str(out), "--sha256", SHA]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("visdial-lg: error:") and "HTTP 404" in err and "/missing.zip" in err
    assert "\n" not in err and leftovers(tmp_path) == []


def test_html_page_by_content_type_is_rejected(server, tmp_path):
    server.routes["/f.zip"] = {"body": b"<div>Dropbox preview</div>", "type": "text/html; charset=utf-8"}
    with pytest.raises(DownloadError, match="HTML page"):
        download(server.url("/f.zip"), tmp_path / "f.zip", **FAST)
    assert leftovers(tmp_path) == []


def test_html_page_by_content_is_rejected(server, tmp_path):
    server.routes["/f.json"] = {"body": b"\n  <!DOCTYPE html><html><body>Log in</body></html>", "type": "application/json"}
    with pytest.raises(DownloadError, match="HTML page"):
        download(server.url("/f.json"), tmp_path / "f.json", **FAST)
    assert leftovers(tmp_path) == []


def test_server_errors_are_retried_then_succeed(server, tmp_path):
    server.routes["/f.zip"] = {"body": BODY, "statuses": [503, 500]}
    download(server.url("/f.zip"), tmp_path / "f.zip", sha256=SHA, retries=2, **FAST)
    assert len(server.requests) == 3 and (tmp_path / "f.zip").read_bytes() == BODY


def test_server_errors_give_up_after_the_retries(server, tmp_path):
    server.routes["/f.zip"] = {"body": BODY, "statuses": [503] * 10}
    with pytest.raises(DownloadError, match="giving up after 2 retries.*HTTP 503"):
        download(server.url("/f.zip"), tmp_path / "f.zip", retries=2, **FAST)
    assert len(server.requests) == 3


def test_refused_connection_is_retried_then_fails(tmp_path):
    with socket.socket() as s:  # a loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="giving up after 1 retries"):
        download(f"http://127.0.0.1:{port}/f.zip", tmp_path / "f.zip", retries=1, **FAST)


def test_trust_on_first_use_records_then_verifies(server, tmp_path, capsys):
    server.routes["/f.zip"] = {"body": BODY}
    lock = tmp_path / "checksums.lock"
    download(server.url("/f.zip"), tmp_path / "a.zip", lock=lock, name="visdial_train", **FAST)
    entry = read_lock(lock)["visdial_train"]
    assert (entry["sha256"], entry["size"], entry["url"]) == (SHA, len(BODY), server.url("/f.zip"))
    assert "recorded sha256" in capsys.readouterr().err

    download(server.url("/f.zip"), tmp_path / "b.zip", lock=lock, name="visdial_train", **FAST)  # verified
    assert (tmp_path / "b.zip").read_bytes() == BODY and "recorded" not in capsys.readouterr().err

    server.routes["/f.zip"] = {"body": BODY[::-1]}  # same size, other bytes
    with pytest.raises(ChecksumError, match="checksums.lock"):
        download(server.url("/f.zip"), tmp_path / "c.zip", lock=lock, name="visdial_train", **FAST)
    assert not (tmp_path / "c.zip").exists() and not (tmp_path / "c.zip.part").exists()
    assert read_lock(lock)["visdial_train"]["sha256"] == SHA  # the lock is never overwritten


def test_published_sha256_takes_precedence_over_the_lock(server, tmp_path):
    server.routes["/f.zip"] = {"body": BODY}
    lock = tmp_path / "checksums.lock"
    lock.write_text(json.dumps({"f": {"sha256": "0" * 64, "size": 1}}))
    download(server.url("/f.zip"), tmp_path / "f.zip", sha256=SHA, lock=lock, name="f", **FAST)
    assert (tmp_path / "f.zip").exists()


def test_malformed_lock_file_names_the_file(server, tmp_path):
    lock = tmp_path / "checksums.lock"
    lock.write_text("{not json")
    with pytest.raises(InputFormatError, match="checksums.lock"):
        download(server.url("/f.zip"), tmp_path / "f.zip", lock=lock, **FAST)


def test_existing_output_is_verified_not_fetched(server, tmp_path):
    out = tmp_path / "f.zip"
    out.write_bytes(BODY)
    assert download(server.url("/f.zip"), out, sha256=SHA, **FAST) == SHA and server.requests == []
    out.write_bytes(b"other")
    with pytest.raises(ChecksumError):
        download(server.url("/f.zip"), out, sha256=SHA, **FAST)


def test_wrong_existing_output_says_to_remove_it(server, tmp_path, capsys):
    """A mismatching file already at --out is kept (it may be the user's) and named in one line."""
    server.routes["/f.zip"] = {"body": BODY}
    out = tmp_path / "f.zip"
    out.write_bytes(b"other")
    for extra in (["--sha256", SHA], ["--size", str(len(BODY))]):
        assert cli_main(["download", server.url("/f.zip"), "--out", str(out), *extra]) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("visdial-lg: error:")]
        assert len(errors) == 1 and f"remove {out} to download it again" in errors[0]
        assert out.read_bytes() == b"other" and server.requests == []  # neither deleted nor fetched


def test_file_urls_for_bring_your_own_data(tmp_path):
    src = tmp_path / "mine.json"
    src.write_bytes(b'{"data": 1}')
    out = tmp_path / "res" / "v.json"
    download(src.as_uri(), out, lock=tmp_path / "checksums.lock", **FAST)
    assert out.read_bytes() == b'{"data": 1}'
    with pytest.raises(DownloadError, match="missing.json"):
        download((tmp_path / "missing.json").as_uri(), tmp_path / "x.json", **FAST)


def test_unsupported_scheme_and_bad_hash_are_clear(tmp_path):
    with pytest.raises(DownloadError, match="only http"):
        download("ftp://example.org/f.zip", tmp_path / "f.zip", **FAST)
    with pytest.raises(Exception, match="64 hex digits"):
        download("http://127.0.0.1/f.zip", tmp_path / "f.zip", sha256="abc", **FAST)


def test_lock_entries_from_parallel_jobs_are_all_kept(tmp_path):
    lock = tmp_path / "checksums.lock"
    digests = {f"src{i}": hashlib.sha256(bytes([i])).hexdigest() for i in range(8)}
    threads = [
        threading.Thread(target=record_in_lock, args=(lock, n), kwargs={"sha256": d, "size": 1, "url": f"http://x/{n}"})
        for n, d in digests.items()
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert {n: e["sha256"] for n, e in read_lock(lock).items()} == digests
    # an existing entry is returned, never overwritten
    assert record_in_lock(lock, "src0", sha256="f" * 64, size=9, url="u")["sha256"] == digests["src0"]
