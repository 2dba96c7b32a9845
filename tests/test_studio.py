"""The studio (``minivgg serve``): its API through Starlette's test client (every endpoint, every bad
input, the token and the Host check), the runs folder and gallery, the samples, and end to end with
the real VGG16 weights: a run, stop and resume, the queue, and ``minivgg serve`` itself under load
(20 event streams) and Ctrl-C. The page in a real browser is ``test_studio_browser.py``."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip(
    "starlette", reason="the studio needs the web extra: pip install 'minivgg[web]'"
)
with warnings.catch_warnings():  # starlette's TestClient warns about its httpx backend
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from minivgg.cli import main
from minivgg.errors import UserError
from minivgg.run import samples
from minivgg.studio import jobs, runs
from minivgg.studio.app import create_app

TOKEN = "test-token"
H = {"X-Minivgg-Token": TOKEN}


def png(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def photo(rng) -> bytes:
    """A 40x56 content photo: a smooth gradient plus a little noise."""
    yy, xx = np.mgrid[0:40, 0:56]
    base = np.stack([xx * 4, yy * 5, 255 - xx * 3], -1) + rng.normal(0, 8, (40, 56, 3))
    return png(base.clip(0, 255))


@pytest.fixture
def client(tmp_path):
    app = create_app(tmp_path / "runs", TOKEN)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def form(**fields):
    base = {"content_source": "upload", "style1_source": "sample:starry-night", "size": "48"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def run_folders(tmp_path) -> list:
    return [p.name for p in (tmp_path / "runs").iterdir() if runs.is_run_id(p.name)]


# ------------------------------------------------------------------------------ security


ENDPOINTS = [
    ("GET", "/"),
    ("GET", "/api/state"),
    ("GET", "/api/samples/starry-night"),
    ("GET", "/api/runs"),
    ("POST", "/api/runs"),
    ("GET", "/api/runs/20260101-120000-abcdef"),
    ("GET", "/api/runs/20260101-120000-abcdef/files/result.png"),
    ("POST", "/api/runs/20260101-120000-abcdef/stop"),
    ("POST", "/api/runs/20260101-120000-abcdef/resume"),
    ("GET", "/api/events"),
]


@pytest.mark.parametrize("method,path", ENDPOINTS)
@pytest.mark.parametrize("token", [None, "wrong", ""])
def test_every_endpoint_needs_the_token(client, method, path, token):
    headers = {} if token is None else {"X-Minivgg-Token": token}
    r = client.request(method, path, headers=headers)
    assert r.status_code == 403
    assert "token" in r.json()["error"]


@pytest.mark.parametrize("method,path", ENDPOINTS[:4])
def test_a_foreign_host_is_refused(client, method, path):
    r = client.request(method, path, headers={**H, "Host": "attacker.example:8765"})
    assert r.status_code == 400


def test_own_host_names_with_ports_are_accepted(client):
    for host in ("127.0.0.1:8765", "localhost", "LOCALHOST:1", "[::1]:8765"):
        assert client.get("/api/state", headers={**H, "Host": host}).status_code == 200, host
    for host in ("", "127.0.0.2", "[::2]:80", "localhost.attacker.example", "127.0.0.1.nip.io:80"):
        assert client.get("/api/state", headers={**H, "Host": host}).status_code == 400, host


def test_token_in_the_query_and_static_files_without_it(client):
    assert client.get(f"/api/state?token={TOKEN}").status_code == 200
    for name in ("app.js", "style.css", "index.html"):
        assert client.get(f"/static/{name}").status_code == 200
    page = client.get(f"/?token={TOKEN}")
    assert page.status_code == 200 and "minivgg studio" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN: works offline
    js = client.get("/static/app.js").text
    assert "http://" not in js and "https://" not in js


def test_state_lists_samples_presets_and_modes(client):
    st = client.get("/api/state", headers=H).json()
    assert [s["name"] for s in st["samples"]] == list(samples.SAMPLES)
    assert "gatys" in st["presets"] and st["color_modes"] == list(jobs.COLOR_MODES)
    assert st["current"] is None and st["waiting"] == [] and st["worker_pid"] is None


def test_sample_images_are_served(client):
    r = client.get("/api/samples/starry-night", headers=H)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(r.content)).size) <= 512
    r = client.get("/api/samples/nope", headers=H)
    assert r.status_code == 404 and "starry-night" in r.json()["error"]


# ------------------------------------------------------------------------------ bad input


TEXT = b"this is not an image\n"


@pytest.mark.parametrize(
    "fields,field",
    [
        (dict(style1_source=None), "styles"),
        (dict(size="abc"), "size"),
        (dict(size="-3"), "size"),
        (dict(size="1,2"), "size"),
        (dict(iters="x"), "iters"),
        (dict(iters="0"), "iters"),
        (dict(scales="24,x"), "scales"),
        (dict(scales="64,32", size="48", iters="1,2,3"), "iters"),
        (dict(tile_size="7"), "tile_size"),
        (dict(color="sepia"), "color"),
        (dict(preset="nope"), "preset"),
        (dict(blend1="-1"), "blend"),
        (dict(blend1="x"), "blend1"),
        (dict(stop_tol="nan"), "stop_tol"),
        (dict(stop_tol="-1"), "stop_tol"),
        (dict(seed="-1"), "seed"),
        (dict(style1_source="sample:nope"), "style1"),
        (dict(style1_source="../../etc/passwd"), "style1"),
        (dict(content_source="run:../../x"), "content"),
        (dict(style1_source="upload"), "style1"),
    ],
)
def test_bad_settings_are_one_sentence_next_to_their_field(client, tmp_path, photo, fields, field):
    r = client.post(
        "/api/runs", headers=H, data=form(**fields), files={"content": ("c.png", photo)}
    )
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["field"] == field, body
    assert body["error"] and "\n" not in body["error"] and "Traceback" not in body["error"]
    assert run_folders(tmp_path) == []  # a refused form leaves nothing behind


def _truncated(photo: bytes) -> bytes:
    return photo[: len(photo) // 2]


@pytest.mark.parametrize(
    "files,data,field,words",
    [
        ({}, {}, "content", "choose a content image"),
        ({"content": ("c.png", TEXT)}, {}, "content", "not an image"),
        ({"content": ("c.png", b"")}, {}, "content", "choose a content image"),
        ("truncated", {}, "content", "truncated"),
        ({}, {"content": "a text field, not a file"}, "content", "must be a file"),
        ("style-text", {"style1_source": "upload"}, "style1", "not an image"),
    ],
)
def test_bad_uploads(client, tmp_path, photo, files, data, field, words):
    if files == "truncated":
        files = {"content": ("c.png", _truncated(photo))}
    elif files == "style-text":
        files = {"content": ("c.png", photo), "style1": ("s.png", TEXT)}
    r = client.post("/api/runs", headers=H, data=form(**data), files=files)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field and words in r.json()["error"], r.json()
    assert ".upload" not in r.json()["error"]  # the temporary file's name is not shown
    assert run_folders(tmp_path) == []


def test_upload_limits_in_bytes_and_pixels(client, tmp_path, photo, monkeypatch):
    monkeypatch.setattr(jobs, "MAX_UPLOAD_BYTES", len(photo) - 1)
    r = client.post("/api/runs", headers=H, data=form(), files={"content": ("c.png", photo)})
    assert r.status_code == 400 and "larger than" in r.json()["error"]
    monkeypatch.setattr(jobs, "MAX_UPLOAD_BYTES", 10**7)
    monkeypatch.setattr(jobs, "MAX_PIXELS", 100)
    r = client.post("/api/runs", headers=H, data=form(), files={"content": ("c.png", photo)})
    assert r.status_code == 400 and "decompression bombs" in r.json()["error"]
    assert r.json()["field"] == "content"
    assert run_folders(tmp_path) == []


def test_a_form_over_the_request_limit_is_413(tmp_path, photo, monkeypatch):
    monkeypatch.setattr(jobs, "MAX_REQUEST_BYTES", 1000)
    with TestClient(create_app(tmp_path / "runs", TOKEN), base_url="http://127.0.0.1") as c:
        r = c.post("/api/runs", headers=H, data=form(), files={"content": ("c.png", photo)})
        assert r.status_code == 413 and "larger than" in r.json()["error"]
    assert run_folders(tmp_path) == []


def test_client_file_names_are_never_used(client, tmp_path, photo, monkeypatch):
    started = []
    monkeypatch.setattr(client.app.state.hub, "_dispatch", lambda: started.append(1))
    r = client.post(
        "/api/runs",
        headers=H,
        data=form(),
        files={"content": ("../../../outside.png", photo)},
    )
    assert r.status_code == 201, r.text
    folder = tmp_path / "runs" / r.json()["id"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "content.png",
        "settings.json",
        "status.json",
        "style1.png",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert runs.read_json(folder / "status.json")["status"] == "queued"


@pytest.mark.parametrize(
    "masks,words",
    [
        ({"mask1": np.zeros((30, 40)), "mask2": np.ones((30, 40))}, "all black"),
        ({"mask1": TEXT, "mask2": np.ones((30, 40))}, "not an image"),
        ({"mask1": np.ones((30, 40))}, "paint a region for style 2"),
    ],
)
def test_bad_painted_regions(client, tmp_path, photo, masks, words):
    files = {"content": ("c.png", photo)}
    for name, m in masks.items():
        files[name] = (f"{name}.png", m if isinstance(m, bytes) else png(m * 255))
    data = form(style2_source="sample:woman-with-hat")
    r = client.post("/api/runs", headers=H, data=data, files=files)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "regions" and words in r.json()["error"], r.json()
    assert run_folders(tmp_path) == []


def test_run_endpoints_refuse_unknown_and_malformed_ids(client):
    for path in (
        "/api/runs/20260101-120000-abcdef",
        "/api/runs/..%2F..%2Fetc",
        "/api/runs/20260101-120000-abcdef/files/result.png",
    ):
        assert client.get(path, headers=H).status_code == 404
    for action in ("stop", "resume"):
        assert client.post(f"/api/runs/nope/{action}", headers=H).status_code == 404
    assert client.get("/api/nothing", headers=H).status_code == 404
    assert client.delete("/api/runs", headers=H).status_code in (404, 405)


def _fake_run(folder: Path, status: str, **extra) -> str:
    run_id, path = runs.new_run(folder)
    settings = jobs.parse_settings({"style1_source": "sample:starry-night", "size": "48"})
    runs.write_json(path / runs.SETTINGS, settings)
    runs.set_status(path, status, **extra)
    Image.new("RGB", (8, 6)).save(path / runs.RESULT)
    return run_id


def test_gallery_files_stop_and_resume_refusals(client, tmp_path):
    done = _fake_run(tmp_path / "runs", "done", final_loss=12.5, seconds=3.0)
    (tmp_path / "runs" / "not-a-run").mkdir()
    items = client.get("/api/runs", headers=H).json()
    assert [i["id"] for i in items] == [done]
    assert items[0]["final_loss"] == 12.5 and items[0]["files"] == ["result.png"]
    r = client.get(f"/api/runs/{done}/files/result.png?download=1", headers=H)
    assert r.status_code == 200 and f"minivgg-{done}-result.png" in r.headers["content-disposition"]
    assert client.get(f"/api/runs/{done}/files/settings.json", headers=H).status_code == 404
    assert client.get(f"/api/runs/{done}/files/log.json", headers=H).status_code == 404
    assert client.post(f"/api/runs/{done}/stop", headers=H).status_code == 409
    r = client.post(f"/api/runs/{done}/resume", headers=H)
    assert r.status_code == 409 and "checkpoint" in r.json()["error"]
    info = client.get(f"/api/runs/{done}", headers=H).json()
    assert info["settings"]["size"] == 48 and info["rows"] == []


def test_runs_left_running_by_a_killed_server_are_marked(tmp_path):
    folder = runs.open_runs_folder(tmp_path / "runs")
    a = _fake_run(folder, "running")
    b = _fake_run(folder, "queued")
    (folder / b / runs.checkpoint_file()).write_bytes(b"x")
    create_app(folder, TOKEN)
    assert runs.summary(folder, a)["status"] == "failed"
    assert runs.summary(folder, b)["status"] == "stopped"


def test_runs_folder_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        create_app(tmp_path / "f", TOKEN)


def test_field_of_maps_transfer_sentences():
    assert jobs.field_of("--scales needs at least one size") == "scales"
    assert jobs.field_of("the tile size must be a whole number of pixels") == "tile_size"
    assert jobs.field_of("unknown preset 'x'; valid presets: gatys") == "preset"
    assert jobs.field_of("content image 'a' does not exist") == "content"


# ------------------------------------------------------------------------------ samples


def test_samples_resolve_by_name_and_files_win(tmp_path, monkeypatch):
    assert samples.resolve("starry-night") == samples.sample_path("starry-night")
    assert samples.sample_path("woman-with-hat").is_file()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "starry-night").write_bytes(b"a file of that name")
    assert samples.resolve("starry-night") == "starry-night"
    with pytest.raises(UserError, match="neither an image file nor a sample"):
        samples.resolve("starry-nite")
    with pytest.raises(UserError, match="unknown sample"):
        samples.sample_path("nope")


def test_sample_files_are_small_jpegs_with_sources():
    for s in samples.SAMPLES.values():
        with Image.open(s.path) as img:
            assert img.format == "JPEG" and max(img.size) <= 512
    text = (samples.sample_path("starry-night").parent / "SOURCES.md").read_text()
    assert "van Gogh" in text and "Matisse" in text and "public domain" in text


def test_samples_command(capsys):
    assert main(["samples"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("starry-night") and "Matisse" in out


@pytest.mark.slow
def test_transfer_takes_a_sample_name(tmp_path, synthetic_weights, photo, capsys):
    (tmp_path / "c.png").write_bytes(photo)
    out = tmp_path / "out.png"
    argv = ["transfer", str(tmp_path / "c.png"), "starry-night", "-o", str(out)]
    argv += [
        "--weights",
        str(synthetic_weights["vgg16"]),
        "--size",
        "24",
        "--iters",
        "1",
        "--quiet",
    ]
    assert main(argv) == 0 and Image.open(out).size == (24, 17)
    argv[2] = "starry-nite"
    assert main(argv) == 2
    assert "neither an image file nor a sample" in capsys.readouterr().err


@pytest.mark.slow
def test_python_api_takes_a_sample_name(synthetic_weights, photo):
    import minivgg

    picture = minivgg.stylize(
        np.asarray(Image.open(io.BytesIO(photo))),
        "woman-with-hat",
        size=24,
        iters=1,
        weights=synthetic_weights["vgg16"],
    )
    assert picture.shape == (17, 24, 3)


# ------------------------------------------------------------------------------ end to end


def _wait(predicate, seconds=120.0, what="condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_run_stop_resume_and_queue(client, tmp_path, photo, real_weights):
    post = lambda **f: client.post(
        "/api/runs", headers=H, data=form(**f), files={"content": ("c.png", photo)}
    )
    first = post(iters="400", all_iters="on").json()
    second = post(iters="3", all_iters="on", color="original-colors").json()
    assert first["status"] == "running" and second["status"] == "queued"
    status = lambda i: client.get(f"/api/runs/{i}", headers=H).json()
    _wait(lambda: len(status(first["id"])["rows"]) >= 3, what="three iterations")
    assert client.post(f"/api/runs/{first['id']}/stop", headers=H).json()["status"] == "stopping"
    info = _wait(lambda: (s := status(first["id"]))["status"] == "stopped" and s, what="the stop")
    assert info["resumable"] and "result.png" in info["files"] and "log.json" in info["files"]
    stopped_at = info["iteration"]
    assert stopped_at >= 3 and len(info["rows"]) == stopped_at
    done2 = _wait(
        lambda: (s := status(second["id"]))["status"] == "done" and s, what="the queued run"
    )
    assert len(done2["rows"]) == 3 and done2["final_loss"] > 0 and "thumb.jpg" in done2["files"]
    # resume the first with fewer iterations left: it continues from its checkpoint
    settings_file = tmp_path / "runs" / first["id"] / runs.SETTINGS
    settings = json.loads(settings_file.read_text())
    settings["iters"] = stopped_at + 2
    runs.write_json(settings_file, settings)
    assert client.post(f"/api/runs/{first['id']}/resume", headers=H).status_code == 200
    done1 = _wait(lambda: (s := status(first["id"]))["status"] == "done" and s, what="the resume")
    its = [r["iteration"] for r in done1["rows"]]
    assert its == list(range(1, stopped_at + 3)), its
    log = client.get(f"/api/runs/{first['id']}/files/log.json", headers=H).json()
    assert len(log["iterations"]) == stopped_at + 2
    png_bytes = client.get(f"/api/runs/{first['id']}/files/result.png", headers=H).content
    assert Image.open(io.BytesIO(png_bytes)).size == (48, 34)
    gallery = [i["id"] for i in client.get("/api/runs", headers=H).json()]
    assert set(gallery) == {first["id"], second["id"]}


# ------------------------------------------------------------------ minivgg serve, under load


def start_server(runs_dir, *extra):
    """``minivgg serve --port 0`` in its own process: ``(process, base URL, token)``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "minivgg", "serve", "--port", "0", "--runs", str(runs_dir), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    found = re.search(r"(http://\S+)/\?token=(\S+)", line)
    assert found, line + proc.stderr.read()
    return proc, found.group(1), found.group(2)


class Stream(threading.Thread):
    """One page's event stream, read in a thread: the ``iter`` records it got, per run."""

    def __init__(self, base, token):
        super().__init__(daemon=True)
        self.base, self.token, self.iters, self.ends = base, token, {}, []
        self.response = None
        self.closed = threading.Event()

    def run(self):
        import httpx

        try:
            with httpx.stream(
                "GET", f"{self.base}/api/events", params={"token": self.token}, timeout=None
            ) as response:
                self.response = response
                kind = None
                for line in response.iter_lines():
                    if self.closed.is_set():
                        return
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: ") and kind in ("iter", "end"):
                        event = json.loads(line[6:])
                        if kind == "iter":
                            self.iters.setdefault(event["run"], []).append(event["iteration"])
                        else:
                            self.ends.append(event["run"])
        except Exception:
            pass

    def close(self):
        self.closed.set()
        if self.response is not None:
            self.response.close()


@pytest.mark.slow
def test_serve_under_load_and_ctrl_c(tmp_path, photo, real_weights):
    """20 pages open while a run computes and a second queues: every page gets every update, pages
    that go away free their streams, the server's memory stays flat; Ctrl-C during a run ends it with
    its checkpoint and the server exits within seconds."""
    import httpx
    import psutil

    proc, base, token = start_server(tmp_path / "runs")
    try:
        h = {"X-Minivgg-Token": token}
        server = psutil.Process(proc.pid)
        streams = [Stream(base, token) for _ in range(20)]
        for s in streams:
            s.start()
        _wait(
            lambda: httpx.get(f"{base}/api/state", headers=h).json()["streams"] == 20,
            30,
            "20 streams",
        )
        post = lambda n: httpx.post(
            f"{base}/api/runs",
            headers=h,
            data=form(iters=str(n), all_iters="on"),
            files={"content": ("c.png", photo)},
        ).json()
        a, b = post(25), post(25)
        assert (a["status"], b["status"]) == ("running", "queued")
        _wait(lambda: all(a["id"] in s.ends for s in streams), 180, "run A on every page")
        rss_a = server.memory_info().rss
        for s in streams[:5]:  # five pages go away while B runs
            s.close()
        _wait(lambda: all(b["id"] in s.ends for s in streams[5:]), 180, "run B on every page")
        rss_b = server.memory_info().rss
        for s in streams[5:]:
            assert s.iters[a["id"]] == list(range(1, 26)) and s.iters[b["id"]] == list(range(1, 26))
        _wait(
            lambda: httpx.get(f"{base}/api/state", headers=h).json()["streams"] == 15,
            30,
            "freed streams",
        )
        print(
            f"server RSS after run A {rss_a / 2**20:.1f} MiB, after run B {rss_b / 2**20:.1f} MiB"
        )
        assert rss_b - rss_a < 20 * 2**20, (rss_a, rss_b)
        # Ctrl-C in the middle of a long run
        c = post(2000)
        _wait(
            lambda: len(httpx.get(f"{base}/api/runs/{c['id']}", headers=h).json()["rows"]) >= 2,
            60,
            "run C",
        )
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        assert time.monotonic() - t0 < 15
        assert proc.returncode == 130
        folder = tmp_path / "runs" / c["id"]
        assert (folder / runs.checkpoint_file()).is_file() and (folder / runs.RESULT).is_file()
        assert runs.read_json(folder / runs.STATUS)["status"] == "stopped"
        for s in streams:
            s.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert "Traceback" not in proc.stderr.read()
    assert sorted(os.listdir(tmp_path)) == ["runs"]
