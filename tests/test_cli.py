"""The ``minivgg`` command line end to end: transfer with snapshots/log/report, presets, resume after
SIGINT, ``gradcheck``, and one-line errors with exit code 2 for bad input (the Python API under it is
``test_transfer.py``)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from minivgg.cli import build_parser, main
from minivgg.engine.backend import gpu_available


@pytest.fixture
def files(transfer_files):
    """content.png, style.jpg, style2.png and vgg16.h5 (synthetic weights): see conftest.py."""
    return transfer_files


def run_cli(*args):
    return main([str(a) for a in args])


@pytest.mark.slow
def test_transfer_writes_output_snapshots_log_and_report(files, tmp_path):
    out = tmp_path / "out.png"
    rc = run_cli(
        "transfer",
        files / "content.png",
        files / "style.jpg",
        "-o",
        out,
        "--weights",
        files / "vgg16.h5",
        "--size",
        64,
        "--iters",
        6,
        "--save-every",
        3,
        "--log",
        tmp_path / "run.json",
        "--report",
        tmp_path / "report.png",
        "--quiet",
    )
    assert rc == 0
    img = np.asarray(Image.open(out))
    assert img.shape == (48, 64, 3)
    assert (tmp_path / "out_0003.png").exists() and (tmp_path / "out_0006.png").exists()
    log = json.loads((tmp_path / "run.json").read_text())
    s = log["settings"]
    for key in (
        "preset",
        "content_weight",
        "style_weight",
        "tv_weight",
        "content_layers",
        "style_layers",
        "style_layer_weights",
        "pooling",
        "iters",
        "optimizer",
        "init",
        "seed",
    ):
        assert key in s
    its = log["iterations"]
    assert [r["iteration"] for r in its] == list(range(1, 7))
    assert set(its[0]) >= {"iteration", "loss", "content", "style", "tv", "seconds"}
    assert all(b["loss"] <= a["loss"] for a, b in zip(its, its[1:]))
    assert log["final_loss"] == pytest.approx(its[-1]["loss"], rel=1e-6)
    assert (
        Image.open(tmp_path / "report.png").size[0] >= 3 * 64
    )  # content, style, result side by side


@pytest.mark.slow
def test_transfer_is_deterministic(files, tmp_path):
    outs = []
    for k in range(2):
        out = tmp_path / f"o{k}.png"
        assert (
            run_cli(
                "transfer",
                files / "content.png",
                files / "style.jpg",
                "-o",
                out,
                "--weights",
                files / "vgg16.h5",
                "--size",
                48,
                "--iters",
                3,
                "--init",
                "random",
                "--seed",
                7,
                "--quiet",
            )
            == 0
        )
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


@pytest.mark.slow
def test_adam_multi_style_and_rounds(files, tmp_path):
    out = tmp_path / "adam.png"
    assert (
        run_cli(
            "transfer",
            files / "content.png",
            files / "style.jpg",
            files / "style2.png",
            "-o",
            out,
            "--weights",
            files / "vgg16.h5",
            "--size",
            48,
            "--iters",
            4,
            "--optimizer",
            "adam",
            "--lr",
            2,
            "--style-blend-weights",
            "2,1",
            "--quiet",
        )
        == 0
    )
    out = tmp_path / "keras.png"
    assert (
        run_cli(
            "transfer",
            files / "content.png",
            files / "style.jpg",
            "-o",
            out,
            "--preset",
            "keras",
            "--weights",
            files / "vgg16.h5",
            "--size",
            48,
            "--iters",
            6,
            "--quiet",
        )
        == 0
    )
    assert out.exists()


def test_presets_lists_all(capsys):
    assert run_cli("presets") == 0
    text = capsys.readouterr().out
    for name in ("gatys", "keras", "cntk", "harvard", "d2l", "ee8601"):
        assert f"{name}:" in text
    assert "block4_conv2" in text


@pytest.mark.parametrize(
    "args,message",
    [
        (["--preset", "nope"], "unknown preset 'nope'; valid presets"),
        (["--style-weight", "-1"], "style_weight must be a finite number >= 0"),
        (["--content-layers", "block9_conv9"], "unknown layer 'block9_conv9'"),
        (["--style-blend-weights", "1,2"], "--style-blend-weights has 2 values for 1 style images"),
        (["--size", "0"], "--size must be a positive"),
        (
            ["--init", "/no/such/file.png"],
            "--init must be content, random, style, noise or an image path",
        ),
    ],
)
def test_bad_flags_exit_2_with_one_line(files, tmp_path, capsys, args, message):
    rc = run_cli(
        "transfer",
        files / "content.png",
        files / "style.jpg",
        "-o",
        tmp_path / "o.png",
        "--weights",
        files / "vgg16.h5",
        "--iters",
        1,
        "--quiet",
        *args,
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_files_exit_2(files, tmp_path, capsys):
    assert (
        run_cli(
            "transfer",
            tmp_path / "missing.png",
            files / "style.jpg",
            "-o",
            tmp_path / "o.png",
            "--quiet",
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    assert (
        run_cli("transfer", files / "content.png", files / "style.jpg", "-o", tmp_path, "--quiet")
        == 2
    )
    assert "is a directory" in capsys.readouterr().err
    assert (
        run_cli(
            "transfer",
            files / "content.png",
            files / "style.jpg",
            "-o",
            files / "content.png",
            "--weights",
            files / "vgg16.h5",
            "--quiet",
        )
        == 2
    )
    assert "same file as the input" in capsys.readouterr().err
    (files / "content.png").stat()  # the input is untouched


def test_usage_error_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["transfer"])
    assert exc.value.code == 2


@pytest.mark.slow
def test_sigint_writes_checkpoint_and_resume_finishes(files, tmp_path):
    out = tmp_path / "long.png"
    cmd = [
        sys.executable,
        "-m",
        "minivgg",
        "transfer",
        str(files / "content.png"),
        str(files / "style.jpg"),
        "-o",
        str(out),
        "--weights",
        str(files / "vgg16.h5"),
        "--size",
        "48",
        "--iters",
        "400",
        "--all-iters",  # no convergence stop: the run is still going when SIGINT comes
        "--save-every",
        "2",
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "long_0002.png").exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    ckpt = tmp_path / "long.png.ckpt.npz"
    assert out.exists() and ckpt.exists()
    assert "resume with: minivgg" in err and "--resume" in err
    it = int(np.load(ckpt)["iteration"])
    assert 2 <= it < 400
    resume = [sys.executable, "-m", "minivgg", *cmd[3:]]
    resume[resume.index("400")] = str(it + 3)
    done = subprocess.run(
        resume + ["--resume", str(ckpt)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout


@pytest.mark.slow
def test_python_dash_m_and_gradcheck_filter():
    r = subprocess.run(
        [sys.executable, "-m", "minivgg", "gradcheck", "-k", "relu*"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "relu" in r.stdout and "pass" in r.stdout and "FAIL" not in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "minivgg", "gradcheck", "-k", "zzz*"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and r.stdout == ""
    assert (
        "no gradient check matches 'zzz*'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    )


def test_gradcheck_filter_matching_nothing_exits_2_with_one_sentence(capsys):
    assert main(["gradcheck", "-k", "zzz*"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("minivgg: error: no gradient check matches 'zzz*'")
    assert len(err.strip().splitlines()) == 1 and "conv2d" in err


def test_gradcheck_filter_runs_only_matching_checks(capsys):
    assert main(["gradcheck", "-k", "avg_pool2d"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines()[2:-1]]
    assert rows and all(row.startswith("avg_pool2d") and row.endswith("pass") for row in rows)
    assert out.splitlines()[-1] == f"{len(rows)} checks, all passed"


@pytest.mark.slow
def test_real_transfer_128px_20_iterations_loss_falls(real_weights, tmp_path):
    shared = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "images")
    content = os.path.join(shared, "tubingen.jpg")
    style = os.path.join(shared, "starry_night.jpg")
    if not os.path.exists(content):
        pytest.skip("../shared/images is not beside the checkout")
    out = tmp_path / "real.png"
    assert (
        run_cli(
            "transfer",
            content,
            style,
            "-o",
            out,
            "--size",
            128,
            "--iters",
            20,
            "--save-every",
            5,
            "--log",
            tmp_path / "log.json",
            "--quiet",
        )
        == 0
    )
    log = json.loads((tmp_path / "log.json").read_text())
    losses = {r["iteration"]: r["loss"] for r in log["iterations"]}
    snaps = [losses[i] for i in (5, 10, 15, 20)]
    assert all(b < a for a, b in zip(snaps, snaps[1:])), snaps
    for i in (5, 10, 15, 20):
        assert (tmp_path / f"real_{i:04d}.png").exists()


def test_run_too_big_for_memory_is_refused_before_allocating(files, tmp_path, capsys, monkeypatch):
    from minivgg.style import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 600 * 2**20)
    rc = run_cli(
        "transfer",
        files / "content.png",
        files / "style.jpg",
        "-o",
        tmp_path / "big.png",
        "--weights",
        files / "vgg16.h5",
        "--size",
        4096,
        "--quiet",
    )
    err = capsys.readouterr().err
    assert rc == 2 and "needs about" in err and "use --size" in err
    assert not (tmp_path / "big.png").exists()


@pytest.mark.slow
def test_non_finite_loss_stops_keeps_last_finite_image_and_names_the_term(files, tmp_path, capsys):
    out = tmp_path / "nan.png"
    rc = run_cli(
        "transfer",
        files / "content.png",
        files / "style.jpg",
        "-o",
        out,
        "--weights",
        files / "vgg16.h5",
        "--size",
        48,
        "--iters",
        5,
        "--style-weight",
        "1e308",
        "--quiet",
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "the style term became non-finite" in err and "lower --style-weight" in err
    assert len(err.strip().splitlines()) == 1
    assert np.isfinite(np.asarray(Image.open(out), dtype=float)).all()


@pytest.mark.slow
def test_transfer_with_in_house_lbfgs_on_cpu(tmp_path, small_transfer):
    small_transfer(tmp_path, "--optimizer", "lbfgs-device")


# The four runs that used to end in "internal error": now a result, or exit 2 with one sentence.


def test_input_layers_only_transfer_runs(files, tmp_path, capsys):
    rc = run_cli(
        "transfer",
        files / "content.png",
        files / "style.jpg",
        "-o",
        tmp_path / "o.png",
        "--weights",
        files / "vgg16.h5",
        "--size",
        32,
        "--iters",
        2,
        "--quiet",
        "--content-layers",
        "input",
        "--style-layers",
        "input",
    )
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "wrote" in out and "final loss" in out and "nan" not in out.lower()
    assert (tmp_path / "o.png").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--seed", "-1"], "--seed must be a whole number >= 0, got -1"),
        pytest.param(
            ["--device", "gpu"],
            "device 'gpu' was asked for, but CuPy is not installed or sees no CUDA device",
            marks=pytest.mark.skipif(gpu_available(), reason="a CUDA GPU is available here"),
        ),
        (["--size", "1000000000"], "use --size"),
    ],
)
def test_former_internal_errors_exit_2_with_one_line(files, tmp_path, capsys, args, message):
    rc = run_cli(
        "transfer",
        files / "content.png",
        files / "style.jpg",
        "-o",
        tmp_path / "o.png",
        "--weights",
        files / "vgg16.h5",
        "--iters",
        1,
        "--quiet",
        *args,
    )
    err = capsys.readouterr().err
    assert rc == 2, err
    assert message in err and "internal error" not in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


def test_every_subcommand_is_registered():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"transfer", "presets", "weights", "gradcheck", "doctor", "demo"} <= set(sub.choices)
