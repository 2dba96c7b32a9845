"""``minivgg.run.checkpoint``: a Ctrl-C checkpoint round-trips; a missing, damaged or mismatched one is a
one-sentence ``UserError``; ``resume_command`` replaces any ``--resume`` of the interrupted command."""

import json

import numpy as np
import pytest

from minivgg.errors import UserError
from minivgg.run import checkpoint


def _one_sentence(exc_info, *words):
    msg = str(exc_info.value)
    assert "\n" not in msg and "Traceback" not in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


def test_checkpoint_path_is_beside_the_output(tmp_path):
    assert checkpoint.checkpoint_path(tmp_path / "out.png") == tmp_path / "out.png.ckpt.npz"


def test_round_trip(tmp_path, rng):
    image = rng.uniform(0, 255, (6, 5, 3))
    path = checkpoint.save(
        tmp_path / "o.ckpt.npz", image, 17, {"preset": "gatys", "w": np.float64(0.5)}, seed=3
    )
    assert path == tmp_path / "o.ckpt.npz" and [p.name for p in tmp_path.iterdir()] == [
        "o.ckpt.npz"
    ]  # no temp
    back, it = checkpoint.load(path, image.shape)
    assert it == 17 and back.dtype == np.float64
    np.testing.assert_array_equal(back, image)
    with np.load(path) as ck:
        assert json.loads(str(ck["settings"])) == {"preset": "gatys", "w": 0.5}
        assert json.loads(str(ck["rng"])) == np.random.default_rng(3).bit_generator.state


def test_missing_or_not_a_checkpoint(tmp_path):
    with pytest.raises(UserError) as e:
        checkpoint.load(tmp_path / "nope.npz", (2, 2, 3))
    _one_sentence(e, "cannot read checkpoint", "nope.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(UserError) as e:
        checkpoint.load(junk, (2, 2, 3))
    _one_sentence(e, "cannot read checkpoint", "junk.npz")
    keyless = tmp_path / "keyless.npz"
    np.savez(keyless, other=np.zeros(3))
    with pytest.raises(UserError) as e:
        checkpoint.load(keyless, (2, 2, 3))
    _one_sentence(e, "cannot read checkpoint", "keyless.npz")


def test_truncated_checkpoint(tmp_path):
    path = checkpoint.save(tmp_path / "o.ckpt.npz", np.zeros((4, 4, 3)), 2, {}, 0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError) as e:
        checkpoint.load(path, (4, 4, 3))
    _one_sentence(e, "cannot read checkpoint")


def test_mismatched_size(tmp_path):
    path = checkpoint.save(tmp_path / "o.ckpt.npz", np.zeros((4, 6, 3)), 2, {}, 0)
    with pytest.raises(UserError) as e:
        checkpoint.load(path, (8, 12, 3))
    _one_sentence(e, "holds a 6x4 image", "works at 12x8", "resume with the same --size")


@pytest.mark.parametrize(
    "image,iteration", [(np.full((2, 2, 3), np.nan), 3), (np.zeros((2, 2, 3)), -1)]
)
def test_damaged_contents(tmp_path, image, iteration):
    path = checkpoint.save(tmp_path / "o.ckpt.npz", image, iteration, {}, 0)
    with pytest.raises(UserError) as e:
        checkpoint.load(path, (2, 2, 3))
    _one_sentence(e, "is damaged")


@pytest.mark.parametrize(
    "argv,expected",
    [
        (
            ["transfer", "c.png", "s.png", "-o", "o.png"],
            ["transfer", "c.png", "s.png", "-o", "o.png"],
        ),
        (["transfer", "c.png", "--resume", "old.npz", "s.png"], ["transfer", "c.png", "s.png"]),
        (["transfer", "--resume=old.npz", "c.png"], ["transfer", "c.png"]),
        (["transfer", "--resume", "a.npz", "--resume=b.npz", "c.png", ""], ["transfer", "c.png"]),
        (None, []),
    ],
)
def test_resume_command_replaces_resume(argv, expected):
    assert checkpoint.resume_command(argv, "new.ckpt.npz") == expected + [
        "--resume",
        "new.ckpt.npz",
    ]
