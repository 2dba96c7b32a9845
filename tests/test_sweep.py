"""``minivgg sweep`` and ``minivgg batch`` (``minivgg.tools.sweep``, ``minivgg.tools.sheet``, ``minivgg.tools.cluster``,
``minivgg.cli.sweep``): grids and names, the settings read by transfer's own flags, cluster sizing, the
contact sheets' layout; end to end on Dask: a 2x2 sweep on the real VGG16 on a LocalCluster the test
starts (4 images, the sheet, the summary; the network loaded once per worker), a bad job failing
alone, a re-run doing no work, a two-row batch on the default local cluster, ``--scheduler`` against a
scheduler and worker the test starts as processes, Ctrl-C; one-sentence errors (exit 2) for a bad
grid, a bad CSV and a missing dask."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minivgg.cli import main
from minivgg.cli.sweep import apply_settings
from minivgg.errors import UserError
from minivgg.tools import cluster, sheet
from minivgg.tools.sweep import grid_name, grid_points, parse_grid, slug

distributed = pytest.importorskip(
    "distributed",
    reason="the sweep tests need the dask extra "
    "(pip install 'minivgg[dask]'; the test extra has it)",
)


@pytest.fixture
def images(tmp_path, rng):
    """A 64x48 content gradient and two 40x40 styles (noise, stripes) in ``tmp_path/in``."""
    d = tmp_path / "in"
    d.mkdir()
    yy, xx = np.mgrid[0:48, 0:64]
    Image.fromarray(
        np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1).clip(0, 255).astype(np.uint8)
    ).save(d / "c.png")
    Image.fromarray(rng.integers(0, 256, (40, 40, 3)).astype(np.uint8)).save(d / "s1.png")
    stripes = np.zeros((40, 40, 3), np.uint8)
    stripes[::4] = (230, 120, 20)
    Image.fromarray(stripes).save(d / "s2.png")
    return d


@pytest.fixture(scope="module")
def local_cluster():
    """A LocalCluster of two single-threaded worker processes on 127.0.0.1, started here."""
    saved = dict(
        os.environ
    )  # the nanny exports its pre-spawn variables (OMP_NUM_THREADS=1, …) into this process
    lc = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    )
    os.environ.clear()
    os.environ.update(saved)
    yield lc
    lc.close()


def _summary(outdir, kind="sweep"):
    return json.loads((Path(outdir) / f"{kind}.json").read_text())


def _one_error_line(err):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("minivgg: error:") and "Traceback" not in err, (
        err
    )
    return lines[0]


# ----------------------------------------------------------------------------- the pure parts


def test_grid_axes_points_and_names():
    axes = parse_grid(
        ["style_weight=1e2,1e3", "tv-weight=0, 1e-3", "content_layers=block4_conv2+block5_conv2"]
    )
    assert axes == [
        ("style_weight", ["1e2", "1e3"]),
        ("tv_weight", ["0", "1e-3"]),
        ("content_layers", ["block4_conv2+block5_conv2"]),
    ]
    points = grid_points(axes)
    assert len(points) == 4 and points[1] == {
        "style_weight": "1e2",
        "tv_weight": "1e-3",
        "content_layers": "block4_conv2+block5_conv2",
    }
    assert (
        grid_name(1, 4, points[1])
        == "02_style_weight=1e2_tv_weight=1e-3_content_layers=block4_conv2+block5_conv2"
    )
    assert slug("-1") == "-1" and slug("/a/b/mask.png") == "mask" and slug("a b") == "a-b"


@pytest.mark.parametrize(
    "texts",
    [
        ["style_weight"],
        ["=1,2"],
        ["style_weight="],
        ["style_weight=1,,2"],
        ["size=1,1"],
        ["size=32", "size=48"],
        ["style weight=1"],
    ],
)
def test_bad_grid_syntax_is_one_user_error(texts):
    with pytest.raises(UserError, match="--grid"):
        parse_grid(texts)


def test_settings_go_through_transfers_own_flags(tmp_path):
    import argparse

    base = argparse.Namespace(
        content_layers=None,
        original_colors=True,
        match_color_histogram="sym",
        init=None,
        content_masks=None,
        size=None,
    )
    args = apply_settings(
        base,
        {
            "content_layers": "block4_conv2+block5_conv2",
            "original_colors": "no",
            "match_color_histogram": "off",
            "init": "start.png",
            "content_masks": "a.png+b.png",
            "size": "48",
        },
        "test",
        tmp_path,
    )
    assert args.content_layers == "block4_conv2,block5_conv2" and args.original_colors is False
    assert args.match_color_histogram is None and args.size == 48
    assert args.init == str(tmp_path / "start.png")
    assert args.content_masks == f"{tmp_path / 'a.png'},{tmp_path / 'b.png'}"
    assert (
        apply_settings(base, {"init": "noise", "match_color_histogram": "yes"}, "t", tmp_path).init
        == "noise"
    )
    with pytest.raises(UserError, match="where: argument --size: invalid int value"):
        apply_settings(base, {"size": "big"}, "where", tmp_path)
    with pytest.raises(UserError, match="unknown setting 'output'"):
        apply_settings(base, {"output": "x.png"}, "where", tmp_path)


@pytest.mark.parametrize(
    "n_jobs, workers, n_cores, job_gib, free_gib, expect",
    [
        (4, None, 2, None, None, (2, 1)),
        (4, None, 16, None, None, (4, 4)),
        (1, None, 8, None, None, (1, 8)),
        (8, None, 8, 3, 10, (3, 2)),
        (8, None, 8, 64, 10, (1, 8)),
        (8, 3, 8, None, None, (3, 2)),
        (2, 5, 8, None, None, (2, 4)),
        (3, 1, 2, None, None, (1, 2)),
    ],
)
def test_the_local_cluster_never_oversubscribes_cores_or_memory(
    n_jobs, workers, n_cores, job_gib, free_gib, expect
):
    gib = 2**30
    got = cluster.local_size(
        n_jobs, workers, n_cores, job_gib and job_gib * gib, free_gib and free_gib * gib
    )
    assert got == expect and got[0] * got[1] <= n_cores
    if job_gib and free_gib and got[0] > 1:
        assert got[0] * job_gib <= 0.9 * free_gib


def _record(path, values, status="ok", total=1.5e6):
    return {
        "name": path.stem,
        "status": status,
        "message": None if status == "ok" else "content image is missing",
        "values": values,
        "content": "c.png",
        "styles": ["s.png"],
        "image": str(path),
        "terms": {"total": total},
        "seconds": 2.0,
    }


def test_sheets_lay_out_rows_columns_and_pages(tmp_path, rng):
    axes = [("style_weight", ["1", "2"]), ("tv_weight", ["0", "1", "2"]), ("size", ["32", "48"])]
    records = []
    for k, point in enumerate(grid_points(axes)):
        path = tmp_path / f"{k}.png"
        Image.fromarray(rng.integers(0, 256, (24, 32, 3)).astype(np.uint8)).save(path)
        records.append(_record(path, point, status="failed" if k == 2 else "ok"))
    (tmp_path / "sheet_3.png").write_bytes(b"stale page of an earlier, larger grid")
    paths = sheet.sweep_sheets(tmp_path, axes, records, tile=64)
    assert [p.name for p in paths] == ["sheet.png", "sheet_2.png"] and not (
        tmp_path / "sheet_3.png"
    ).exists()
    first = np.asarray(Image.open(paths[0]).convert("RGB"))
    assert first.shape[1] > 3 * 64 and first.shape[0] > 2 * 48  # 3 columns, 2 rows of 64x48 tiles
    assert (first == 225).all(axis=-1).sum() > 64 * 48 // 2  # the failed job's grey cell
    (tmp_path / "one").mkdir()
    one_axis = sheet.sweep_sheets(tmp_path / "one", axes[1:2], records[:3], tile=64)
    assert np.asarray(Image.open(one_axis[0])).shape[0] < first.shape[0]
    batch = sheet.batch_sheets(tmp_path, records[:5], tile=64, columns=2, rows=2)
    assert [p.name for p in batch] == ["sheet.png", "sheet_2.png"]


# --------------------------------------------------------------------- command-line errors


@pytest.mark.parametrize(
    "grid",
    [
        "style_weight",
        "bogus=1,2",
        "output=x.png",
        "style_weight=abc",
        "size=1,1",
        "original_colors=maybe",
        "match_color_histogram=bogus",
        "style_weight=1,,2",
    ],
)
def test_a_bad_grid_is_one_sentence_and_exit_2(images, tmp_path, capsys, grid):
    out = tmp_path / "out"
    code = main(
        [
            "sweep",
            str(images / "c.png"),
            str(images / "s1.png"),
            "--grid",
            grid,
            "-o",
            str(out),
            "--quiet",
        ]
    )
    assert code == 2 and "--grid" in _one_error_line(capsys.readouterr().err)
    assert not out.exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ("content,output\nc.png,a\n", "no style column"),
        ("content,style,bogus\nc.png,s1.png,1\n", "unknown setting"),
        ("", "is empty"),
        ("content,style\n", "no jobs"),
        ("content,style,size\nc.png,s1.png,x\n", "invalid int"),
        ("content,style,output\nc.png,s1.png,a\nc.png,s1.png,A.jpg\n", "also the output of line 2"),
        ("content,style,output\nc.png,s1.png,sheet\n", "taken by the summary"),
        ("content,style\nc.png,s1.png,extra\n", "3 cells for 2 columns"),
        ("content,style\nc.png,\n", "style cell is empty"),
        (None, "does not exist"),
        (b"\xff\xfe\x00not utf-8", "not a UTF-8"),
    ],
)
def test_a_bad_batch_file_is_one_sentence_and_exit_2(images, tmp_path, capsys, text, message):
    jobs = images / "jobs.csv"
    if isinstance(text, bytes):
        jobs.write_bytes(text)
    elif text is not None:
        jobs.write_text(text)
    code = main(["batch", str(jobs), "-o", str(tmp_path / "out"), "--quiet"])
    assert code == 2 and message in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--workers", "0"], "--workers must be"),
        (["--scheduler", "bogus"], "--scheduler must be an address"),
        (["--scheduler", "tcp://127.0.0.1:9", "--workers", "2"], "own workers"),
    ],
)
def test_bad_cluster_flags_are_one_sentence(images, tmp_path, capsys, flags, message):
    code = main(
        [
            "sweep",
            str(images / "c.png"),
            str(images / "s1.png"),
            "--grid",
            "size=32",
            "-o",
            str(tmp_path / "out"),
            *flags,
        ]
    )
    assert code == 2 and message in _one_error_line(capsys.readouterr().err)


def test_without_dask_the_commands_say_so(images, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    code = main(
        [
            "sweep",
            str(images / "c.png"),
            str(images / "s1.png"),
            "--grid",
            "size=32,48",
            "-o",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2 and "pip install 'minivgg[dask]'" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ on Dask


@pytest.mark.slow
def test_a_2x2_sweep_on_a_local_cluster_then_a_rerun_does_no_work(
    real_weights, local_cluster, images, tmp_path, capsys
):
    out = tmp_path / "sweep"
    argv = [
        "sweep",
        str(images / "c.png"),
        str(images / "s1.png"),
        "--grid",
        "style_weight=1e2,1e4",
        "--grid",
        "tv_weight=0,1e-3",
        "--size",
        "64",
        "--iters",
        "3",
        "-o",
        str(out),
        "--quiet",
    ]
    assert main([*argv, "--scheduler", local_cluster.scheduler_address]) == 0
    summary = _summary(out)
    assert summary["counts"]["ok"] == 4
    assert summary["axes"] == {"style_weight": ["1e2", "1e4"], "tv_weight": ["0", "1e-3"]}
    assert (
        summary["cluster"]["address"] == local_cluster.scheduler_address
        and not summary["cluster"]["local"]
    )
    pids = set()
    for job in summary["jobs"]:
        assert job["status"] == "ok" and np.isfinite(job["terms"]["total"]) and job["seconds"] > 0
        assert job["iterations"] == 3 and Image.open(job["image"]).size == (64, 48)
        assert job["worker"]["network_loads"] == 1  # once per worker process, not per task
        pids.add(job["worker"]["pid"])
        log = json.loads(Path(job["log"]).read_text())
        assert log["status"] == "ok" and log["settings"]["style_weight"] == float(
            job["values"]["style_weight"]
        )
    assert len(list(out.glob("*.png"))) == 5 and 1 <= len(pids) <= 2
    page = Image.open(out / "sheet.png")
    assert page.width > 2 * 256 and page.height > 2 * 192  # 2 columns, 2 rows of 64x48 results x4
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("0*")}
    capsys.readouterr()
    # The re-run finds every job done: it does not even reach a scheduler (nothing listens on port 9).
    assert main([*argv, "--scheduler", "tcp://127.0.0.1:9"]) == 0
    text = capsys.readouterr().out
    assert (
        "4 of 4 jobs ok (4 done before)" in text and len(text.splitlines()) == 1
    )  # --quiet: the summary
    loud = [a for a in argv if a != "--quiet"]
    assert main([*loud, "--scheduler", "tcp://127.0.0.1:9"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5  # one line per job, then the summary
    assert {p: p.stat().st_mtime_ns for p in out.glob("0*")} == mtimes
    assert _summary(out)["counts"]["skipped"] == 4


@pytest.mark.slow
def test_a_bad_job_fails_alone_and_only_it_runs_again(
    real_weights, local_cluster, images, tmp_path, capsys
):
    out = tmp_path / "sweep"
    argv = [
        "sweep",
        str(images / "c.png"),
        str(images / "s1.png"),
        "--grid",
        "style_weight=1e2,-1,1e300",
        "--size",
        "48",
        "--iters",
        "2",
        "-o",
        str(out),
        "--scheduler",
        local_cluster.scheduler_address,
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("minivgg: error: 2 of 3 jobs failed")
    assert "job 02_style_weight=-1 failed: style_weight must be a finite number >= 0" in err
    assert "job 03_style_weight=1e300 failed: the style term became non-finite" in err
    jobs = _summary(out)["jobs"]
    assert [j["status"] for j in jobs] == ["ok", "failed", "failed"]
    assert Image.open(jobs[0]["image"]).size == (48, 36)
    assert json.loads(Path(jobs[1]["log"]).read_text())["status"] == "failed"
    assert main([*argv, "--quiet"]) == 2
    assert [j.get("skipped", False) for j in _summary(out)["jobs"]] == [True, False, False]


@pytest.mark.slow
def test_a_two_row_batch_on_the_default_local_cluster(real_weights, images, tmp_path, capsys):
    (images / "jobs.csv").write_text(
        "content,style,output,tv_weight,original_colors\n"
        "c.png,s1.png;s2.png,first,,\n"
        "c.png,s2.png,second.jpg,1e-2,yes\n"
    )
    out = tmp_path / "batch"
    assert (
        main(["batch", str(images / "jobs.csv"), "-o", str(out), "--size", "48", "--iters", "2"])
        == 0
    )
    summary = _summary(out, "batch")
    first, second = summary["jobs"]
    assert (first["name"], second["name"]) == ("first", "second") and summary["counts"]["ok"] == 2
    assert first["styles"] == [str(images / "s1.png"), str(images / "s2.png")]
    assert second["values"] == {"tv_weight": "1e-2", "original_colors": "yes"}
    assert (
        Image.open(out / "first.png").size == (48, 36)
        and Image.open(out / "second.jpg").format == "JPEG"
    )
    assert (out / "sheet.png").is_file() and summary["cluster"]["local"]
    workers, threads = cluster.local_size(
        2
    )  # the default sizing: as many workers as cores and jobs allow
    assert (summary["cluster"]["workers"], summary["cluster"]["threads_per_worker"]) == (
        workers,
        threads,
    )
    threads = str(threads)
    for job in summary["jobs"]:
        assert set(job["worker"]["threads"].values()) == {threads}
    log = json.loads((out / "second.json").read_text())
    assert log["settings"]["tv_weight"] == 1e-2 and log["settings"]["original_colors"] is True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def scheduler_and_worker(tmp_path):
    """``dask scheduler`` and one ``dask worker`` (one thread) as processes on 127.0.0.1; their address."""
    address = f"tcp://127.0.0.1:{_free_port()}"
    log = open(tmp_path / "dask.log", "w")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                address.rsplit(":", 1)[1],
                "--no-dashboard",
            ],
            stdout=log,
            stderr=log,
        )
    ]
    procs.append(
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_worker",
                address,
                "--nthreads",
                "1",
                "--host",
                "127.0.0.1",
                "--no-dashboard",
                "--no-nanny",
            ],
            stdout=log,
            stderr=log,
            cwd=tmp_path,
        )
    )
    with distributed.Client(
        address, timeout=60
    ) as client:  # up and joined, however loaded the machine is
        client.wait_for_workers(1, timeout=60)
    yield address
    for p in reversed(procs):  # the worker first: it says goodbye to the scheduler
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    log.close()


@pytest.mark.slow
def test_scheduler_flag_uses_a_running_cluster(
    real_weights, scheduler_and_worker, images, tmp_path, capsys
):
    out = tmp_path / "sweep"
    assert (
        main(
            [
                "sweep",
                str(images / "c.png"),
                str(images / "s2.png"),
                "--grid",
                "tv_weight=0,1e-3",
                "--size",
                "40",
                "--iters",
                "2",
                "-o",
                str(out),
                "--scheduler",
                scheduler_and_worker,
                "--quiet",
            ]
        )
        == 0
    )
    summary = _summary(out)
    assert summary["counts"]["ok"] == 2 and summary["cluster"]["address"] == scheduler_and_worker
    assert summary["cluster"]["workers"] == 1 and summary["cluster"]["threads_per_worker"] is None
    assert len({j["worker"]["pid"] for j in summary["jobs"]}) == 1 and (out / "sheet.png").is_file()
    assert f"on the Dask cluster at {scheduler_and_worker}" in capsys.readouterr().out


@pytest.mark.slow
def test_ctrl_c_cancels_the_rest_and_keeps_finished_results(synthetic_weights, images, tmp_path):
    out = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "minivgg",
        "sweep",
        str(images / "c.png"),
        str(images / "s1.png"),
        "--grid",
        "iters=1,2000,2001",
        "--all-iters",
        "--size",
        "48",
        "--weights",
        synthetic_weights["vgg16"],
        "--workers",
        "1",
        "-o",
        str(out),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while (
            not (out / "01_iters=1.json").exists()
            and time.monotonic() < deadline
            and proc.poll() is None
        ):
            time.sleep(0.2)
        time.sleep(1.0)  # the second job is running now
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "leaked" not in stderr
    assert "cancelled 2 unfinished of 3 jobs" in stderr and stderr.strip().endswith(
        "minivgg: interrupted"
    )
    statuses = [j["status"] for j in _summary(out)["jobs"]]
    assert statuses == ["ok", "cancelled", "cancelled"]
    assert (
        Image.open(out / "01_iters=1.png").size == (48, 36)
        and not (out / "02_iters=2000.json").exists()
    )
    deadline = (
        time.monotonic() + 20
    )  # no worker left behind (the resource tracker ends last, on its own)
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"processes of the interrupted sweep are still running: {_group(proc.pid)}")


def _group(pgid) -> str:
    ps = subprocess.run(
        ["ps", "-o", "pid,stat,cmd", "-g", str(pgid)], capture_output=True, text=True
    )
    return ps.stdout.strip()
