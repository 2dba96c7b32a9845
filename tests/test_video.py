"""``minivgg video``: flow, warp and occlusion mask on synthetic clips whose true flow is known, the
temporal loss and its gradient, decoding/encoding with frame rate and sound, the run end to end with
real VGG16 weights, the warping error against independent frames, resume after an interrupt, and bad
input as one sentence with exit 2."""

from __future__ import annotations

import dataclasses
import subprocess

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

pytest.importorskip("cv2")
imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")

import minivgg.cli as cli  # noqa: E402
from minivgg.errors import UserError  # noqa: E402
from minivgg.gradcheck import check_grad  # noqa: E402
from minivgg.network.vgg import random_vgg  # noqa: E402
from minivgg.run.transfer import RunOptions, execute  # noqa: E402
from minivgg.style.objective import Objective  # noqa: E402
from minivgg.style.temporal import TemporalTerm, temporal_loss  # noqa: E402
from minivgg.tools.checks import all_cases  # noqa: E402
from minivgg.video import io as vio  # noqa: E402
from minivgg.video import run as vrun  # noqa: E402
from minivgg.video import stylize_video, work  # noqa: E402
from minivgg.video.flow import (  # noqa: E402
    consistency_mask,
    flow_and_mask,
    optical_flow,
    warp,
    warping_error,
)


def texture(rng, shape, blur=1.5):
    """Smooth random colours 0..255 (uint8): enough structure for the flow everywhere."""
    t = gaussian_filter(rng.uniform(0, 255, shape), (blur, blur, 0))
    return ((t - t.min()) / (t.max() - t.min()) * 255).astype(np.uint8)


def translating_clip(rng, n=6, h=48, w=64, step=(2, 1), blur=3.0):
    """Crops of one big texture moving by ``step`` = (dx, dy) pixels a frame: true backward flow (-dx, -dy)."""
    big = texture(rng, (h + n * step[1] + 40, w + n * step[0] + 40, 3), blur)
    return [
        np.ascontiguousarray(
            big[20 + k * step[1] : 20 + k * step[1] + h, 20 + k * step[0] : 20 + k * step[0] + w]
        )
        for k in range(n)
    ]


def write_mp4(path, frames, fps, audio_seconds=None):
    """An H.264 mp4 (nearly lossless) with an optional 440 Hz tone, made with the ffmpeg of imageio-ffmpeg."""
    audio = None
    if audio_seconds:
        audio = path.with_suffix(".wav")
        subprocess.run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(),
                "-y",
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
                f"sine=frequency=440:duration={audio_seconds}",
                str(audio),
            ],
            check=True,
        )
    h, w = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (w, h),
        fps=fps,
        macro_block_size=1,
        output_params=["-crf", "4"],
        audio_path=None if audio is None else str(audio),
        audio_codec="aac" if audio else None,
    )
    writer.send(None)
    for f in frames:
        writer.send(f)
    writer.close()
    return path


def probe(path):
    """``(metadata, frame count)`` of a video file as ffmpeg reads it."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    return meta, sum(1 for _ in reader)


# ------------------------------------------------------------------------- flow, warp and mask


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_the_flow_and_the_warp_recover_a_translation(rng, method):
    a, b = translating_clip(rng, n=2)[
        :2
    ]  # b is a moved 2 px right, 1 px down: a(p) = b(p - (2, 1))
    inner = (slice(8, -8), slice(8, -8))
    forward = optical_flow(a, b, method)
    assert np.abs(forward[inner] - [-2, -1]).mean() < 0.1
    backward = optical_flow(b, a, method)
    assert np.abs(backward[inner] - [2, 1]).mean() < 0.1
    warped = warp(a.astype(np.float64), backward)  # frame 0 brought onto frame 1
    assert np.abs(warped[inner] - b[inner]).mean() < 1.5  # of 0..255: bilinear on a smooth texture
    assert np.abs(a[inner].astype(float) - b[inner]).mean() > 8  # without the warp: far apart


def test_warp_is_bilinear_sampling_at_p_plus_flow():
    img = np.arange(20, dtype=np.float64).reshape(4, 5)
    flow = np.zeros((4, 5, 2), np.float32)
    flow[..., 0], flow[..., 1] = 0.5, 1.0  # half a pixel right, one down
    expected = np.array(
        [
            [
                img[min(y + 1, 3), x] * 0.5 + img[min(y + 1, 3), min(x + 1, 4)] * 0.5
                for x in range(5)
            ]
            for y in range(4)
        ]
    )
    assert np.allclose(warp(img, flow), expected)


def test_the_mask_marks_the_disoccluded_band_of_a_moving_square(rng):
    bg, square = texture(rng, (96, 96, 3)), texture(rng, (32, 32, 3))

    def frame(x0):
        f = bg.copy()
        f[32:64, x0 : x0 + 32] = square
        return f

    backward, mask = flow_and_mask(frame(20), frame(24))  # the square moves 4 px right
    assert np.abs(np.median(backward[38:58, 32:50], axis=(0, 1)) - [-4, 0]).max() < 0.3
    assert np.abs(backward[:20]).max() < 0.5  # the background stands still
    band = mask[34:62, 20:24]  # uncovered in frame 1, hidden under the square in frame 0
    assert band.mean() < 0.3
    assert mask[:, 72:].mean() > 0.95 and mask[:22].mean() > 0.95  # far from the square: reliable
    assert mask[38:58, 32:50].mean() > 0.95  # inside the square: reliable


def test_the_consistency_check_follows_ruders_thresholds():
    still = np.zeros((12, 12, 2), np.float32)
    assert consistency_mask(still, still).min() == 1
    jump = still.copy()
    jump[..., 0] = 1.0  # backward says 1 px, forward says 0 px: |w~ + w^|^2 = 1 > 0.01 + 0.5
    assert consistency_mask(still, jump)[:, :10].max() == 0
    small = still.copy()
    small[..., 0] = 0.5  # 0.25 < 0.01 * 0.25 + 0.5: within tolerance
    assert consistency_mask(still, small)[:, :11].min() == 1
    assert consistency_mask(still, small)[:, 11].max() == 0  # p + w^ leaves the frame


def test_warping_error_is_zero_for_a_perfectly_warped_video_and_grows_with_flicker(rng):
    clip = translating_clip(rng, n=4)
    pairs = [flow_and_mask(clip[t - 1], clip[t]) for t in range(1, 4)]
    flows, masks = [p[0] for p in pairs], [p[1] for p in pairs]
    steady = warping_error(clip, flows, masks)
    noisy = [np.clip(f + rng.normal(0, 20, f.shape), 0, 255) for f in clip]
    assert steady < 2e-4 and warping_error(noisy, flows, masks) > 20 * steady


# --------------------------------------------------------------------------------- the loss


def test_temporal_loss_matches_a_loop_and_its_gradient_passes_the_checker(rng):
    x, target = rng.uniform(0, 255, (5, 6, 3)), rng.uniform(0, 255, (5, 6, 3))
    mask = (rng.uniform(size=(5, 6)) > 0.4).astype(float)
    value, grad = temporal_loss(x, target, mask)
    loop = sum(
        mask[i, j] * (x[i, j, k] - target[i, j, k]) ** 2
        for i in range(5)
        for j in range(6)
        for k in range(3)
    )
    assert value == pytest.approx(loop / x.size, rel=1e-12)
    assert np.allclose(grad, 2 * mask[:, :, None] * (x - target) / x.size)
    assert not grad[mask == 0].any()
    for dtype in (np.float64, np.float32):
        res = check_grad(lambda z: temporal_loss(z, target.astype(z.dtype), mask), x, dtype=dtype)
        assert res.passed, res.report()


def test_the_temporal_loss_is_a_case_of_the_gradient_check_suite():
    (case,) = all_cases("temporal_loss")
    assert case.dtypes == ("float64", "float32")
    for dtype in case.dtypes:
        res = case.check(dtype)
        assert res.passed, res.report()


@pytest.mark.slow
def test_an_objective_with_the_temporal_term_has_the_right_gradient(rng):
    net = random_vgg(
        "vgg16", seed=0, dtype=np.float64
    )  # float64: the check sees no float32 rounding
    content, style = texture(rng, (16, 16, 3)), texture(rng, (16, 16, 3))
    obj = Objective(
        net, content, style, content_layers=("block2_conv1",), style_layers=("block1_conv1",)
    )
    x0 = rng.uniform(0, 255, (16, 16, 3))
    plain_value, plain_grad = obj.value_and_grad(x0)
    target, mask = rng.uniform(0, 255, (16, 16, 3)), (rng.uniform(size=(16, 16)) > 0.5) * 1.0
    obj.extra_terms.append(TemporalTerm(1e3, [(target, mask)]))
    value, grad = obj.value_and_grad(x0)
    t_value, t_grad = temporal_loss(x0, target, mask)
    assert value == pytest.approx(plain_value + 1e3 * t_value, rel=1e-9)
    assert obj.last_terms["temporal"] == pytest.approx(1e3 * t_value)
    assert np.allclose(grad, plain_grad + 1e3 * t_grad)
    res = check_grad(obj.value_and_grad, x0, dtype=np.float64)
    assert res.passed, res.report()


# ----------------------------------------------------------------------------------- files


def test_a_folder_of_frames_reads_in_natural_order_and_writes_every_format(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for k in (1, 2, 10):  # natural order: f2 before f10
        Image.fromarray(np.full((30, 40, 3), 20 * k, np.uint8)).save(folder / f"f{k}.png")
    clip = vio.read_clip(folder, 20, fps=12.5)
    assert [int(f[0, 0, 0]) for f in clip.frames] == [20, 40, 200]
    assert clip.frames[0].shape == (15, 20, 3) and clip.fps == 12.5 and not clip.audio
    for suffix in (".mp4", ".webm", ".gif", ".mov"):
        out = tmp_path / f"out{suffix}"
        vio.write_video(out, clip.frames, 12.5)
        meta, n = probe(out)
        assert n == 3 and meta["fps"] == pytest.approx(12.5, abs=0.6), suffix
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


def test_sound_and_frame_rate_survive_a_round_trip_and_frames_select_a_segment(rng, tmp_path):
    src = write_mp4(
        tmp_path / "in.mp4", translating_clip(rng, n=10, h=32, w=48), fps=10, audio_seconds=1.0
    )
    clip = vio.read_clip(src, 32, frames=(2, 7))
    assert (len(clip.frames), clip.first, clip.fps, clip.audio) == (5, 2, 10.0, True)
    out = tmp_path / "out.mp4"
    vio.write_video(out, clip.frames, clip.fps, (src, 0.2, 0.5))
    meta, n = probe(out)
    assert n == 5 and meta["fps"] == 10 and meta.get("audio_codec") == "aac"
    assert meta["duration"] == pytest.approx(0.5, abs=0.1)
    half = vio.read_clip(src, 32, fps=5)  # resampled: half the frames, the same duration
    assert len(half.frames) == 5 and half.fps == 5


# ------------------------------------------------------------------------------ end to end


def _cached(net):
    return lambda arch, **kw: net


@pytest.mark.slow
def test_a_6_frame_video_runs_end_to_end_on_dask_with_sound_and_frame_rate_kept(
    real_weights, rng, tmp_path, capsys, monkeypatch
):
    src = write_mp4(tmp_path / "in.mp4", translating_clip(rng, n=6), fps=12, audio_seconds=0.5)
    Image.fromarray(texture(rng, (48, 48, 3), 0.7)).save(tmp_path / "style.png")
    monkeypatch.setattr(vrun, "_load_network_cache", lambda load: _cached(real_weights))
    out = tmp_path / "out.mp4"
    argv = [
        "video",
        str(src),
        str(tmp_path / "style.png"),
        "-o",
        str(out),
        "--size",
        "48",
        "--iters",
        "4",
        "--quiet",
        "--log",
        str(tmp_path / "log.json"),
        "--workers",
        "1",
    ]
    assert cli.main(argv) == 0
    assert "6 frames at 12 fps, with sound" in capsys.readouterr().out
    meta, n = probe(out)
    assert n == 6 and meta["fps"] == 12 and meta.get("audio_codec") == "aac"
    assert meta["size"] == (48, 36)
    assert not work.work_folder(out).exists()  # the frames are in the output now
    import json

    log = json.loads((tmp_path / "log.json").read_text())
    assert [r["frame"] for r in log["records"]] == list(range(6))
    assert all(r["temporal"] > 0 for r in log["records"][1:])


def _independent(frames, style, net, iters):
    """Each frame stylised on its own from the content, as ``minivgg transfer`` does."""
    opts = RunOptions(output=None, size=48, iters=iters, quiet=True, load_network=_cached(net))
    runs = [execute(f, [style], opts, {}) for f in frames]
    return [picture for picture, _ in runs], [log["iterations"][-1]["style"] for _, log in runs]


@pytest.mark.slow
def test_the_video_flickers_less_than_independent_frames(real_weights, rng, tmp_path, monkeypatch):
    frames = translating_clip(rng, n=4, h=36, w=48)  # already at the working size
    folder = tmp_path / "in"
    folder.mkdir()
    for k, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{k:03d}.png")
    style = texture(rng, (48, 48, 3), 0.7)
    Image.fromarray(style).save(tmp_path / "style.png")
    monkeypatch.setattr(vrun, "_load_network_cache", lambda load: _cached(real_weights))
    log = stylize_video(
        folder, tmp_path / "style.png", tmp_path / "out", size=48, iters=6, workers=0, quiet=True
    )
    video = [np.asarray(Image.open(tmp_path / "out" / f"frame_{k + 1:05d}.png")) for k in range(4)]
    alone, alone_style = _independent(frames, style, real_weights, 6)
    pairs = [flow_and_mask(frames[t - 1], frames[t]) for t in range(1, 4)]
    flows, masks = [p[0] for p in pairs], [p[1] for p in pairs]
    e_video, e_alone = warping_error(video, flows, masks), warping_error(alone, flows, masks)
    assert e_video < e_alone / 5, (e_video, e_alone)  # the target: 5x lower
    assert log["resumed_at"] == 0 and len(log["records"]) == 4
    # ... and no less stylised: the style loss of frames 1.. is not above the independent frames'
    assert np.mean([r["style"] for r in log["records"][1:]]) <= 1.1 * np.mean(alone_style[1:])


@pytest.mark.slow
def test_an_interrupted_run_keeps_its_frames_and_the_same_command_continues(
    real_weights, rng, tmp_path, capsys, monkeypatch
):
    src = tmp_path / "in"
    src.mkdir()
    for k, f in enumerate(translating_clip(rng, n=4)):
        Image.fromarray(f).save(src / f"{k}.png")
    Image.fromarray(texture(rng, (48, 48, 3), 0.7)).save(tmp_path / "style.png")
    monkeypatch.setattr(vrun, "_load_network_cache", lambda load: _cached(real_weights))
    calls, real_optimize = [], vrun.optimize

    def interrupt_on_third(run, argv=None):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_optimize(run, argv)

    monkeypatch.setattr(vrun, "optimize", interrupt_on_third)
    out = tmp_path / "out"  # a folder of frames: the kept PNGs become its files, byte for byte
    argv = [
        "video",
        str(src),
        str(tmp_path / "style.png"),
        "-o",
        str(out),
        "--size",
        "48",
        "--iters",
        "3",
        "--quiet",
        "--workers",
        "0",
    ]
    assert cli.main(argv) == 130
    err = capsys.readouterr().err
    assert "2 of 4 frames are finished" in err and "continue with: minivgg" in err
    folder = work.work_folder(out)
    kept = {k: work.frame_path(folder, k).read_bytes() for k in range(2)}
    assert not out.exists() and not work.frame_path(folder, 2).exists()
    monkeypatch.setattr(vrun, "optimize", real_optimize)
    log = stylize_video(src, [tmp_path / "style.png"], out, size=48, iters=3, workers=0, quiet=True)
    assert log["resumed_at"] == 2 and [r["frame"] for r in log["records"]] == [2, 3]
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{k:05d}.png" for k in range(1, 5)]
    assert all((out / f"frame_{k + 1:05d}.png").read_bytes() == kept[k] for k in range(2))
    assert not folder.exists()


# ----------------------------------------------------------------------------------- bad input


def _one_error_line(err):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("minivgg: error:"), err
    return lines[0]


@pytest.fixture
def bad_inputs(tmp_path, rng):
    d = tmp_path
    Image.fromarray(texture(rng, (40, 40, 3))).save(d / "style.png")
    (d / "text.mp4").write_text("this is not a video\n")
    good = write_mp4(d / "good.mp4", translating_clip(rng, n=3, h=32, w=32), fps=10)
    (d / "trunc.mp4").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 3])
    (d / "empty").mkdir()
    mixed = d / "mixed"
    mixed.mkdir()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(mixed / "1.png")
    Image.fromarray(np.zeros((30, 20, 3), np.uint8)).save(mixed / "2.png")
    full = d / "full"
    full.mkdir()
    (full / "keep.txt").write_text("the user's file\n")
    return d


@pytest.mark.parametrize(
    "input_name, extra, message",
    [
        ("text.mp4", [], "is not a video ffmpeg can read"),
        ("trunc.mp4", [], "good"),  # either message; see below
        ("empty", [], "holds no frames"),
        ("mixed", [], "must have one size"),
        ("good.mp4", ["--max-pixels", "100"], "more than --max-pixels"),
        ("good.mp4", ["--frames", "5:9"], "none in --frames"),
        ("good.mp4", ["--frames", "3:1"], "selects no frames"),
        ("good.mp4", ["--temporal-weight", "-1"], "--temporal-weight"),
        ("good.mp4", ["--fps", "0"], "--fps"),
        ("good.mp4", ["--fps", "x"], "--fps"),
        ("good.mp4", ["-o", "{d}/nodir/out.mp4"], "does not exist"),
        ("good.mp4", ["-o", "{d}/out.avi2"], "use one of"),
        ("good.mp4", ["-o", "{d}/full"], "is not empty"),
        ("good.mp4", ["-o", "{d}/good.mp4"], "is the input"),
        ("good.mp4", ["--save-every", "2"], "--save-every"),
        ("good.mp4", ["--workers", "-1"], "--workers"),
        ("missing.mp4", [], "does not exist"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(bad_inputs, capsys, input_name, extra, message):
    d = bad_inputs
    argv = [
        "video",
        str(d / input_name),
        str(d / "style.png"),
        "--size",
        "32",
        "--iters",
        "1",
        "--quiet",
        "--workers",
        "0",
    ]
    extra = [e.format(d=d) for e in extra]
    if "-o" not in extra:
        argv += ["-o", str(d / "out.mp4")]
    before = {p.name: p.stat().st_mtime_ns for p in d.rglob("*")}
    assert cli.main(argv + extra) == 2
    line = _one_error_line(capsys.readouterr().err)
    if input_name == "trunc.mp4":
        assert "is not a video" in line or "is corrupt" in line
    else:
        assert message in line
    after = {p.name: p.stat().st_mtime_ns for p in d.rglob("*")}
    assert {k: v for k, v in after.items() if k in before} == before  # nothing the user had changed
    assert not list(d.glob("*.work"))


def test_a_work_folder_of_another_run_is_refused(bad_inputs, capsys):
    d = bad_inputs
    work.WorkFolder(work.work_folder(d / "out.mp4"), "another-run", 3)
    argv = [
        "video",
        str(d / "good.mp4"),
        str(d / "style.png"),
        "-o",
        str(d / "out.mp4"),
        "--size",
        "32",
        "--quiet",
        "--workers",
        "0",
    ]
    assert cli.main(argv) == 2
    assert "holds frames of another run" in _one_error_line(capsys.readouterr().err)


def test_frames_flag_parsing():
    assert vrun.parse_frames("2:5") == (2, 5) and vrun.parse_frames(":5") == (None, 5)
    for bad in ("x", "1:2:3", "5:2", "-1:3", "1.5:3"):
        with pytest.raises(UserError):
            vrun.parse_frames(bad)


def test_stylize_video_options_reach_transfer(monkeypatch, tmp_path):
    seen = {}

    def fake_run(source, styles, output, opts, overrides, video, argv=None):
        seen.update(opts=opts, overrides=overrides, video=video, styles=styles)
        return {}

    monkeypatch.setattr(vrun, "run_video", fake_run)
    stylize_video(
        "in.mp4",
        "s.png",
        "o.mp4",
        size=64,
        iters=7,
        style_weight=5.0,
        temporal_weight=3.0,
        frames=(1, 4),
    )
    assert (
        seen["opts"].size == 64
        and seen["opts"].iters == 7
        and seen["overrides"] == {"style_weight": 5.0}
    )
    assert dataclasses.astuple(seen["video"])[:2] == (3.0, (1, 4)) and seen["styles"] == ["s.png"]
