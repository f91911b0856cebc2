"""Metrics exposure: a non-loopback address is warned about, and can require a token."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request

from weft.metrics.auth import guarded, read_auth_file
from weft.metrics.server import exposure_warning


def _auth_file(path, line: str, mode: int = 0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    os.write(fd, f"# scrape credentials\n{line}\n".encode())
    os.close(fd)
    os.chmod(path, mode)
    return path


def _get(url: str, header: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": header} if header else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_public_metrics_warn_and_require_the_token(project, tmp_path):
    auth = _auth_file(tmp_path / "metrics-auth", "bearer tok-123")
    started = project.cli("worker", "start", "--metrics-addr", "0.0.0.0:0",
                          "--metrics-auth-file", str(auth), "--json")
    assert started.returncode == 0, started.stderr
    assert "warning" in started.stderr and "other hosts" in started.stderr
    info = json.loads(started.stdout)
    project.track(info["pid"])
    port = project.registry()[info["tid"]]["metrics_addr"].rpartition(":")[2]
    url = f"http://127.0.0.1:{port}/metrics"
    assert _get(url)[0] == 401
    assert _get(url, "Bearer wrong")[0] == 401
    status, body = _get(url, "Bearer tok-123")
    assert status == 200 and "weft_" in body
    log = project.root / ".weft" / "logs" / f"manager-{info['tid']}.log"
    assert "reachable from other hosts" in log.read_text()


def test_loopback_metrics_give_no_warning():
    assert exposure_warning("127.0.0.1:0", None) is None
    assert exposure_warning("9464", None) is None
    assert exposure_warning("[::1]:9464", None) is None
    assert "without authentication" in exposure_warning("0.0.0.0:9464", None)
    assert "without authentication" in exposure_warning("metrics.example:9464", None)


def test_basic_auth_and_bad_files(tmp_path):
    header = read_auth_file(str(_auth_file(tmp_path / "basic", "basic scraper:pw:x")))
    assert header == "Basic " + base64.b64encode(b"scraper:pw:x").decode()
    app = guarded(lambda env, start: (start("200 OK", []), [b"ok"])[1], header)
    seen: list[str] = []
    assert app({"HTTP_AUTHORIZATION": header}, lambda s, h: seen.append(s)) == [b"ok"]
    assert app({}, lambda s, h: seen.append(s)) == [b"unauthorized\n"]
    assert seen == ["200 OK", "401 Unauthorized"]
    loose = _auth_file(tmp_path / "loose", "bearer x", mode=0o644)
    for path, words in ((loose, "chmod 600"), (_auth_file(tmp_path / "odd", "token x"), "bearer")):
        try:
            read_auth_file(str(path))
        except Exception as exc:  # noqa: BLE001
            assert words in str(exc) and getattr(exc, "exit_code", None) == 2
        else:
            raise AssertionError("accepted a bad auth file")


def test_bad_auth_file_stops_the_manager_with_the_reason(project, tmp_path):
    loose = _auth_file(tmp_path / "loose", "bearer x", mode=0o644)
    proc = project.cli("worker", "start", "--metrics-addr", "127.0.0.1:0",
                       "--metrics-auth-file", str(loose))
    assert proc.returncode == 2 and "chmod 600" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
