"""Property-based test of the whole command line: Hypothesis draws every subcommand's flags, valid
and invalid values alike, at tiny sizes, runs ``minivgg.cli.main`` in-process and checks the contract
of ``minivgg`` exit codes:

* exit 0 with a readable output (the image/log/report/stdout the command promises), or
* exit 2 with exactly one non-empty stderr line, starting ``minivgg: error:``, and no traceback
  (with progress output on — no ``--quiet`` — the error must be the last line and the only one);
* never exit 1 (internal error), never another code, never an exception escaping ``main``, never a
  run over the time limit (``MINIVGG_CLI_TIMEOUT`` seconds, default 60).

Adding a command: write a strategy returning ``Case`` objects and a ``Command`` entry in
``COMMANDS``. ``test_every_command_has_a_strategy`` fails for a subcommand of the parser without one,
and ``test_every_flag_is_drawn`` for a flag a strategy never draws.

Example counts: ``MINIVGG_CLI_EXAMPLES`` (default 25) per command for ``test_cli_contract``; the
commands whose property takes more than a few seconds at that count (transfer, demo, weights info:
5-10 s each on 2 cores; sweep and batch, which start a local Dask cluster, ~40-70 s) are marked
``slow``, and ``test_cli_contract_quick`` runs 3 examples of each of them in the fast subset.
``test_one_factor`` (slow, ~2 min) runs a plain transfer/demo with one value changed, for every value
of every pool. ``test_pinned_case`` runs fixed argvs (known past bugs)
on every run. Generation is derandomized, without a database, so a CI failure reproduces locally.
``MINIVGG_CLI_SHRINK=0`` skips shrinking; ``MINIVGG_CLI_SHRINK_SECONDS`` (default 20) bounds it.

Files: ``$DATA`` (made once per module by the ``data`` fixture: tiny images, synthetic VGG weights
from ``tests/synth.py``, and bad inputs), ``$TMP`` a fresh empty folder per run (also the working
directory). ``MINIVGG_FETCH_SOURCES=none``: nothing touches the network; ``MINIVGG_HOME`` is the real
cache, an empty folder or one holding a corrupt cache file (the real cache is checked unchanged).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, note, reject, settings
from hypothesis import strategies as st
from PIL import Image
from synth import write_keras_h5

import minivgg.cli as cli

EXAMPLES = int(os.environ.get("MINIVGG_CLI_EXAMPLES", "25"))
QUICK_EXAMPLES = min(EXAMPLES, 3)
TIMEOUT_S = float(os.environ.get("MINIVGG_CLI_TIMEOUT", "60"))
SHRINK = os.environ.get("MINIVGG_CLI_SHRINK", "1") != "0"
SHRINK_SECONDS = float(os.environ.get("MINIVGG_CLI_SHRINK_SECONDS", "20"))

ERROR_PREFIX = "minivgg: error:"


# ------------------------------------------------------------------------------ symbolic files


@dataclasses.dataclass(frozen=True)
class Ref:
    """A path in a drawn argv, resolved at run time: ``data`` a file of the module's ``$DATA`` folder
    (which may not exist: ``missing.png``), ``tmp`` a path in the run's fresh ``$TMP`` folder, ``copy``
    a copy of a ``$DATA`` file made in ``$TMP`` (so a run that overwrites its input harms nothing).
    ``sub`` is appended (``copy:content.png`` + ``/sub``: a path below a file)."""

    kind: str
    name: str
    sub: str = ""

    def __repr__(self):
        if self.kind == "datalist":
            return ",".join(f"$DATA/{n}" for n in self.name.split(","))
        folder = "$DATA" if self.kind in ("data", "datalist") else "$TMP"
        return f"{folder}/{'copy_' if self.kind == 'copy' else ''}{self.name}{self.sub}"


def D(name, sub=""):
    return Ref("data", name, sub)


def DL(*names):
    """A comma-separated list of ``$DATA`` files, one token (``--content-masks a.png,b.png``)."""
    return Ref("datalist", ",".join(names))


def T(name):
    return Ref("tmp", name)


def C(name, sub=""):
    return Ref("copy", name, sub)


@dataclasses.dataclass(frozen=True)
class Case:
    """One drawn command line: ``argv`` (str and Ref tokens) and the weights cache it runs against
    (``real``: the user's cache, ``empty``: an empty folder, ``corrupt``: a folder whose cached vgg16
    file is garbage)."""

    argv: tuple
    home: str = "real"

    def __repr__(self):
        env = "" if self.home == "real" else f"MINIVGG_HOME=<{self.home}> "
        return f"Case({env}minivgg {' '.join(shlex.quote(repr(t) if isinstance(t, Ref) else t) for t in self.argv)})"

    @property
    def quiet(self) -> bool:
        return "--quiet" in self.argv


# ------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Tiny good inputs, synthetic weights and bad inputs; every name is referred to by a strategy."""
    d = tmp_path_factory.mktemp("cli-data")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:40]
    content = np.stack([xx * 6, yy * 8, (xx + yy) * 3], -1).clip(0, 255).astype(np.uint8)
    Image.fromarray(content).save(d / "content.png")  # 40x32
    Image.fromarray(rng.integers(0, 256, (36, 36, 3)).astype(np.uint8)).save(d / "style.jpg")
    Image.fromarray(rng.integers(0, 256, (30, 24, 3)).astype(np.uint8)).save(d / "style2.png")
    Image.fromarray(rng.integers(0, 256, (20, 30)).astype(np.uint8), "L").save(d / "gray.png")
    Image.fromarray(rng.integers(0, 256, (28, 28, 4)).astype(np.uint8), "RGBA").save(d / "rgba.png")
    left = np.zeros((40, 32), np.uint8)
    left[:, :16] = 255
    Image.fromarray(left, "L").save(d / "mask_left.png")
    Image.fromarray(255 - left, "L").save(d / "mask_right.png")
    Image.fromarray(np.zeros((40, 32), np.uint8), "L").save(d / "mask_black.png")
    write_keras_h5(d / "vgg16.h5", "vgg16")
    write_keras_h5(d / "vgg19.h5", "vgg19")
    (d / "adir").mkdir()
    (d / "dir.png").mkdir()
    (d / "text.png").write_text("this is not an image\n")
    (d / "empty.png").write_bytes(b"")
    png = (d / "content.png").read_bytes()
    (d / "trunc.png").write_bytes(png[: len(png) // 2])
    (d / "text.h5").write_text("not hdf5\n")
    (d / "trunc.h5").write_bytes((d / "vgg16.h5").read_bytes()[:4096])
    (d / "text.npz").write_text("not a checkpoint\n")
    np.savez(d / "nokeys.npz", foo=np.zeros(3))
    np.savez(d / "wrongshape.npz", image=np.zeros((5, 7, 3)), iteration=np.array(1))
    for name, text in BATCH_FILES.items():
        (d / name).write_text(text)
    _video_files(d, content)
    runs = tmp_path_factory.mktemp("cli-runs")
    return {"data": d, "runs": runs}


def _real_cache_dir() -> Path:
    home = os.environ.get("MINIVGG_HOME")
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("minivgg"))


@pytest.fixture(scope="module", autouse=True)
def real_cache_untouched():
    """The runs may read the real weights cache but must never change a weights file in it."""
    cache = _real_cache_dir()

    def snapshot():
        return (
            {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(cache.glob("*.h5"))}
            if cache.is_dir()
            else {}
        )

    before = snapshot()
    yield
    assert snapshot() == before, (
        f"the real weights cache {cache} changed during the CLI property test"
    )


@pytest.fixture
def offline(monkeypatch):
    """No command may reach the network: every fetch source is disabled."""
    monkeypatch.setenv("MINIVGG_FETCH_SOURCES", "none")


# ---------------------------------------------------------------------------------------- runner


@dataclasses.dataclass
class Result:
    argv: list  # resolved, as strings
    code: object  # int exit code, "hang", or None when an exception escaped main
    stdout: str
    stderr: str
    exc: BaseException | None
    tb: str
    seconds: float
    tmp: Path
    data_dir: Path


class _Hang(BaseException):
    """Raised by the alarm; a BaseException so main's ``except Exception`` does not turn it into exit 1."""


def _resolve(token, data_dir: Path, tmp: Path, paths: dict):
    if not isinstance(token, Ref):
        return str(token)
    if token not in paths:
        if token.kind == "datalist":
            paths[token] = ",".join(str(data_dir / n) for n in token.name.split(","))
            return paths[token]
        if token.kind == "data":
            p = data_dir / token.name
        elif token.kind == "tmp":
            p = tmp / token.name
        else:
            p = tmp / f"copy_{token.name}"
            if not p.exists():
                src = data_dir / token.name
                shutil.copytree(src, p) if src.is_dir() else shutil.copyfile(src, p)
        paths[token] = Path(f"{p}{token.sub}")
    return str(paths[token])


def _show_on_stderr(message, category, filename, lineno, file=None, line=None):
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


@contextlib.contextmanager
def _cli_warnings():
    """Warnings as a fresh ``minivgg`` process shows them: Python's default filters, printed on
    (the captured) stderr — not recorded by pytest, so the stderr checks see what a user sees."""
    with warnings.catch_warnings():
        warnings.resetwarnings()
        for category in (
            DeprecationWarning,
            PendingDeprecationWarning,
            ImportWarning,
            ResourceWarning,
        ):
            warnings.simplefilter("ignore", category)
        warnings.showwarning = _show_on_stderr
        yield


@contextlib.contextmanager
def _environment(case: Case, tmp: Path):
    """The run's working directory and weights cache; restored afterwards."""
    old_cwd, old_home = os.getcwd(), os.environ.get("MINIVGG_HOME")
    if case.home != "real":
        home = tmp / f"home-{case.home}"
        home.mkdir()
        if case.home == "corrupt":
            (home / "vgg16_notop.h5").write_text("garbage, not a weights file\n")
        os.environ["MINIVGG_HOME"] = str(home)
    os.chdir(tmp)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        if old_home is None:
            os.environ.pop("MINIVGG_HOME", None)
        else:
            os.environ["MINIVGG_HOME"] = old_home


def run_case(case: Case, data: dict) -> Result:
    tmp = Path(tempfile.mkdtemp(prefix="run-", dir=data["runs"]))
    paths: dict = {}
    argv = [_resolve(t, data["data"], tmp, paths) for t in case.argv]
    out, err = io.StringIO(), io.StringIO()
    code, exc, tb = None, None, ""

    def on_alarm(signum, frame):
        raise _Hang()

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    t0 = time.perf_counter()
    try:
        with _environment(case, tmp):
            signal.setitimer(signal.ITIMER_REAL, TIMEOUT_S)
            try:
                with (
                    contextlib.redirect_stdout(out),
                    contextlib.redirect_stderr(err),
                    _cli_warnings(),
                ):
                    try:
                        code = cli.main(list(argv))
                    except SystemExit as e:  # argparse: usage errors (2) and --help (0)
                        code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except _Hang:
        code = "hang"
    except BaseException as e:
        exc, tb = e, traceback.format_exc()
    finally:
        signal.signal(signal.SIGALRM, old_handler)
    return Result(
        argv,
        code,
        out.getvalue(),
        err.getvalue(),
        exc,
        tb,
        time.perf_counter() - t0,
        tmp,
        data["data"],
    )


# ------------------------------------------------------------------------------------- checking


class ContractViolation(AssertionError):
    """Base class; each distinct kind of failure gets its own subclass (below) so that Hypothesis,
    which tells failures apart by exception type, reports and shrinks every distinct bug separately."""


_VIOLATIONS: dict = {}


def _violation(key: str) -> type:
    name = "ContractViolation_" + re.sub(r"\W+", "_", key).strip("_")[:80]
    if name not in _VIOLATIONS:
        _VIOLATIONS[name] = type(name, (ContractViolation,), {})
    return _VIOLATIONS[name]


def _lines(text: str) -> list:
    return [ln for ln in text.splitlines() if ln.strip()]


def _kind_of_internal_error(stderr: str) -> str:
    m = re.search(
        r"internal error: (\w+): ?(.*?)(\(run with --debug for the traceback\))?$", stderr, re.M
    )
    if not m:
        return "no_message"
    words = re.findall(r"[A-Za-z]+", m.group(2))[:3]
    return "_".join([m.group(1), *words])


def _describe(case: Case, res: Result, problem: str) -> str:
    env = "MINIVGG_FETCH_SOURCES=none "
    if case.home != "real":
        env += f"MINIVGG_HOME={shlex.quote(str(res.tmp / f'home-{case.home}'))} "
    lines = [
        f"{problem}",
        f"  drawn:     {case!r}",
        f"  reproduce: {env}minivgg {shlex.join(res.argv)}",
        f"  exit code: {res.code}   ({res.seconds:.1f} s)",
        f"  where $DATA = {res.data_dir} (the `data` fixture), $TMP = {res.tmp} (fresh, also the cwd)"
        + ("" if case.home == "real" else f"; MINIVGG_HOME: <{case.home}> cache folder"),
        "  stderr:" + ("" if res.stderr.strip() else " (empty)"),
        *[f"    | {ln}" for ln in res.stderr.splitlines()[-15:]],
        "  stdout (last lines):" + ("" if res.stdout.strip() else " (empty)"),
        *[f"    | {ln}" for ln in res.stdout.splitlines()[-5:]],
    ]
    if res.tb:
        lines += ["  exception escaping main:", *[f"    {ln}" for ln in res.tb.splitlines()]]
    return "\n".join(lines)


def check_contract(case: Case, res: Result, check_ok) -> None:
    """Raise a ContractViolation subclass (message: argv, exit code, stderr) unless the run kept the contract."""

    def fail(key, problem):
        raise _violation(key)(_describe(case, res, problem))

    if res.code == "hang":
        fail("hang", f"the run did not finish within {TIMEOUT_S:g} s")
    if res.exc is not None:
        fail(
            f"raised_{type(res.exc).__name__}", f"{type(res.exc).__name__} escaped minivgg.cli.main"
        )
    err_lines = _lines(res.stderr)
    if "Traceback (most recent call last)" in res.stderr:
        fail(f"traceback_exit{res.code}", "a traceback on stderr")
    if res.code == 1:
        fail(
            f"exit1_{_kind_of_internal_error(res.stderr)}",
            "exit 1 (internal error) instead of 0 or 2",
        )
    if res.code == 2:
        errors = [ln for ln in err_lines if ln.startswith(ERROR_PREFIX)]
        if case.quiet or not _progress_command(case):
            ok = len(err_lines) == 1 and len(errors) == 1
            want = "exactly one non-empty stderr line, starting 'minivgg: error:'"
        else:  # progress output allowed before the error
            ok = len(errors) == 1 and err_lines[-1] == errors[0]
            want = "one 'minivgg: error:' line, the last on stderr"
        if ok and not errors[0][len(ERROR_PREFIX) :].strip(" .:"):
            ok, want = False, "a non-empty message after 'minivgg: error:'"
        if not ok:
            fail("exit2_stderr", f"exit 2 without {want}")
        return
    if res.code != 0:
        fail(f"exit{res.code}", f"exit {res.code} (expected 0 or 2)")
    problems = ["nothing on stdout"] if not res.stdout.strip() else []
    if "-h" in res.argv or "--help" in res.argv:
        if "usage:" not in res.stdout:
            problems.append("--help printed no usage")
    else:
        problems += check_ok(case, res)
    if problems:
        fail("exit0_output", "exit 0 but the output is not readable: " + "; ".join(problems))


def _progress_command(case: Case) -> bool:
    """Commands that draw progress on stderr unless --quiet."""
    return case.argv[:1] in (
        ("transfer",),
        ("demo",),
        ("reconstruct",),
        ("sweep",),
        ("batch",),
        ("video",),
    ) or case.argv[:2] == ("weights", "fetch")


def _image_problem(path: Path, what: str, longest: int | None = None) -> list:
    try:
        with Image.open(path) as im:
            im.load()
            size = im.size
    except Exception as exc:
        return [f"{what} {path} is not a readable image ({type(exc).__name__}: {exc})"]
    if longest is not None and max(size) != longest:
        return [f"{what} {path} is {size[0]}x{size[1]}, longest side not the --size {longest}"]
    return []


def _json_problem(path: Path, what: str, keys=("iterations", "settings")) -> list:
    try:
        log = json.loads(path.read_text())
        assert isinstance(log, dict) and all(k in log for k in keys)
    except Exception as exc:
        return [f"{what} {path} is not a readable JSON log ({type(exc).__name__}: {exc})"]
    return []


def _option(res: Result, *names):
    """The value of the last occurrence of an option (``--x v`` or ``--x=v``) in the resolved argv."""
    value = None
    for i, a in enumerate(res.argv):
        for n in names:
            if a == n and i + 1 < len(res.argv):
                value = res.argv[i + 1]
            elif a.startswith(n + "="):
                value = a[len(n) + 1 :]
    return value


# ----------------------------------------------------------------------------------- strategies


def mix(valid, invalid, odds=3):
    """``valid`` odds times in odds + 1, else ``invalid``; shrinks towards valid."""
    return st.integers(0, odds).flatmap(lambda i: invalid if i == odds else valid)


def maybe(odds=5):
    """True about once in odds + 1 draws; shrinks to False (leaving the flag out)."""
    return st.integers(0, odds).map(lambda i: i == odds)


def values(*xs):
    return st.sampled_from([x if isinstance(x, Ref) else str(x) for x in xs])


def as_strategy(pool):
    return pool if pool is None or isinstance(pool, st.SearchStrategy) else values(*pool)


def option_chunk(draw, flag, value):
    """``--flag value`` or ``--flag=value`` (the latter is the only way to pass '-inf' and the like)."""
    if isinstance(value, str) and value.startswith("-") or draw(maybe(3)):
        if isinstance(value, Ref):
            return [flag, value]  # keep Ref tokens whole
        return [f"{flag}={value}"]
    return [flag, value]


HELP = ("-h", "--help")
GOOD_IMAGES = [D("content.png"), D("style.jpg"), D("style2.png"), D("gray.png"), D("rgba.png")]
BAD_IMAGES = [
    D("missing.png"),
    D("adir"),
    D("dir.png"),
    D("text.png"),
    D("empty.png"),
    D("trunc.png"),
]
BAD_WEIGHTS = [D("text.h5"), D("trunc.h5"), D("missing.h5"), D("adir"), D("content.png")]
VGG16_TAPS = [
    "input",
    "block1_conv1",
    "conv1_2",
    "relu1_2",
    "pool1",
    "conv2_1",
    "relu2_2",
    "block2_pool",
    "relu3_1",
    "block3_conv3",
    "pool2",
    "conv4_1",
    "block4_conv2",
    "relu4_3",
    "pool3",
    "block5_conv1",
]
BAD_TAPS = [
    "bogus",
    "block9_conv1",
    "conv0_1",
    "Block1_conv1",
    "conv3_4",
    "pool6",
    "relu",
    ",",
    " ",
]
NUMBERS_BAD = ["-1", "nan", "inf", "-inf", "1e400", "x", "", "1,2"]
PRESETS = ["gatys", "keras", "cntk", "harvard", "d2l", "ee8601"]
VGG19_PRESETS = {"d2l", "ee8601"}

_taps = st.lists(st.sampled_from(VGG16_TAPS), min_size=1, max_size=3).flatmap(
    lambda ts: st.sampled_from([",".join(ts), ", ".join(ts)])
)
_bad_taps = st.one_of(
    values(*BAD_TAPS),
    st.tuples(st.sampled_from(VGG16_TAPS), st.sampled_from(BAD_TAPS)).map(",".join),
)
_pos_floats = st.sampled_from(["0.5", "1", "2", "0.2", "1e-3"])
_float_lists = st.lists(_pos_floats, min_size=1, max_size=6).map(",".join)
_bad_float_lists = st.one_of(
    st.lists(st.sampled_from(["1", "-1", "nan", "inf", "x", "0"]), min_size=1, max_size=6).map(
        ",".join
    ),
    values("", ",", "1,,2", "a,b"),
)

# Every optional flag of `transfer`: (valid values, invalid values), each a list or a strategy; None: no
# valid value (--resume), or one that depends on the draw (--style-blend-weights: one per style).
TRANSFER_OPTIONAL = {
    "--preset": ([*PRESETS], ["bogus", "", "GATYS"]),
    "--style-scale": (["0.5", "1", "1.5", "2"], ["0", "-1", "nan", "inf", "x", "1e9"]),
    "--optimizer": (["lbfgs", "lbfgs-device", "adam"], ["bogus", ""]),
    "--lr": (["0.1", "1", "2", "5"], ["0", "-1", "nan", "inf", "x"]),
    "--init": (
        ["content", "random", "style", "noise", D("style2.png")],
        ["bogus", "", D("text.png"), D("missing.png"), D("adir"), D("trunc.png")],
    ),
    "--seed": (["0", "1", "7", str(2**32), str(2**70)], ["-1", "-5", "x", "1.5"]),
    "--content-weight": (["0", "1e-3", "1", "5", "1e4"], NUMBERS_BAD),
    "--style-weight": (["0", "1", "10", "1e4"], NUMBERS_BAD),
    "--tv-weight": (["0", "1e-3", "1", "30"], NUMBERS_BAD),
    "--content-layers": (_taps, _bad_taps),
    "--style-layers": (_taps, _bad_taps),
    "--style-layer-weights": (_float_lists, _bad_float_lists),
    "--style-blend-weights": (
        None,
        _bad_float_lists,
    ),  # valid values depend on the style count (below)
    "--pooling": (["avg", "max"], ["bogus", ""]),
    "--flip-kernels": (["yes", "no", "auto"], ["bogus", ""]),
    "--device": (["cpu"], ["gpu", "tpu"]),
    "--save-every": (["0", "1", "2"], ["-1", "x"]),
    "--log": ([T("log.json")], [D("adir"), T("nodir/log.json"), T("out.png"), C("content.png")]),
    "--report": (
        [T("report.png")],
        [D("adir"), T("nodir/report.png"), T("out.png"), T("report.txt")],
    ),
    "--max-pixels": (["100000", "1280", str(10**9)], ["10", "0", "-1", "x"]),
    "--resume": (
        None,
        [
            D("missing.npz"),
            D("text.npz"),
            D("nokeys.npz"),
            D("wrongshape.npz"),
            D("adir"),
            D("content.png"),
        ],
    ),
    "--conv": (["auto", "im2col", "winograd"], ["bogus", "", "Winograd"]),
    "--scales": (
        ["20,32", "24,40", "20,28,32", "32"],
        ["0,32", "x", "", "32,-4", "8,32", "1000000000"],
    ),
    "--min-scale": (["20", "24"], ["0", "-1", "x", "100", "1"]),
    "--stop-tol": (["0", "0.02", "0.5"], ["-1", "nan", "x"]),
    "--stop-window": (["1", "10", "50"], ["0", "-3", "x", "2.5"]),
    "--history": (["3", "10", "100"], ["0", "-1", "x", "1.5"]),
    "--tile-size": (["16", "32", "40", "1024"], ["0", "-16", "8", "2.5", "x", ""]),
    "--match-color-histogram": (["chol", "pca", "sym"], ["bogus", "PCA"]),
    "--content-masks": (
        None,
        [
            D("mask_left.png"),
            D("mask_black.png"),
            D("missing.png"),
            D("text.png"),
            DL("mask_left.png", "mask_left.png", "mask_left.png"),
            DL("mask_black.png", "mask_black.png"),
        ],
    ),
    "--style-masks": (None, [D("mask_left.png"), D("mask_black.png"), D("missing.png")]),
    "--mask-mode": (["simple", "inside", "all"], ["bogus", ""]),
}
# Flags without a value, drawn bare now and then (--match-color-histogram alone means pca).
TRANSFER_SWITCHES = (
    "--all-iters",
    "--single-scale",
    "--original-colors",
    "--luminance-only",
    "--match-color-histogram",
)


# Valid --size values shrink towards 32 (16 is valid but too small for gatys' deepest layer at 40x32).
_SIZES = st.one_of(st.sampled_from(["32", "24", "48", "20"]), st.integers(16, 48).map(str))
TRANSFER_BASE = ("content", "styles", "--output", "--size", "--iters", "--weights")


@st.composite
def transfer_cases(draw):
    """Three kinds of run, shrinking towards the first: ``focus`` — every value valid but those of one
    factor (a base flag, an input or an optional flag), which come from the whole pool, valid and
    invalid, plus now and then another valid optional flag; ``valid`` — valid values only, several
    optional flags; ``mixed`` — any flag, any value."""
    mode = draw(st.sampled_from(["focus", "valid", "mixed"]))
    focus = draw(st.sampled_from([*TRANSFER_BASE, *TRANSFER_OPTIONAL])) if mode == "focus" else None

    def pick(factor, valid, invalid, odds=3):
        if mode == "valid" or (mode == "focus" and factor != focus):
            return None if valid is None else draw(valid)
        if valid is None:
            return draw(invalid)
        return draw(mix(valid, invalid, 1 if factor == focus else odds))

    n_styles = draw(st.integers(1, 2))
    output = pick(
        "--output",
        values(T("out.png"), T("out.jpg")),
        values("self", D("adir"), T("nodir/out.png"), T("out.txt"), T("out")),
        odds=7,
    )
    content = (
        C("content.png")
        if output == "self"
        else pick("content", values(*GOOD_IMAGES), values(*BAD_IMAGES), odds=7)
    )
    if output == "self":  # the input itself as the output (a copy, so the data folder stays intact)
        output = content
    styles = [
        pick("styles", values(*GOOD_IMAGES), values(*BAD_IMAGES), odds=7) for _ in range(n_styles)
    ]

    chunks = [[draw(st.sampled_from(["-o", "--output"])), output]]
    bad_sizes = values("0", "-3", "1000000000", "1", "7", "x", "2.5", "")
    chunks.append(option_chunk(draw, "--size", pick("--size", _SIZES, bad_sizes, odds=5)))
    chunks.append(
        option_chunk(
            draw,
            "--iters",
            pick("--iters", st.integers(1, 3).map(str), values("0", "-1", "x"), odds=7),
        )
    )
    preset = None
    for flag, (valid, invalid) in TRANSFER_OPTIONAL.items():
        if not (flag == focus or draw(maybe(10 if mode == "focus" else 6))):
            continue
        if flag == "--style-blend-weights":
            valid = st.lists(_pos_floats, min_size=n_styles, max_size=n_styles).map(",".join)
        if flag in ("--content-masks", "--style-masks"):  # one mask per style image
            valid = st.lists(
                st.sampled_from(["mask_left.png", "mask_right.png"]),
                min_size=n_styles,
                max_size=n_styles,
            ).map(lambda names: DL(*names))
        value = pick(flag, as_strategy(valid), as_strategy(invalid))
        if value is None:
            continue
        if flag == "--preset":
            preset = value
        chunks.append(option_chunk(draw, flag, value))
    arch = "vgg19" if preset in VGG19_PRESETS else "vgg16"
    weights = pick(
        "--weights",
        st.sampled_from([D(f"{arch}.h5")] * 4 + [None]),  # None: the real cache
        values(D("vgg19.h5" if arch == "vgg16" else "vgg16.h5"), *BAD_WEIGHTS),
        odds=5,
    )
    if weights is not None:
        chunks.append(["--weights", weights])
    chunks += _switch_chunks(draw, TRANSFER_SWITCHES, mode)
    chunks = draw(st.permutations(chunks))
    options = [t for c in chunks for t in c]
    positionals = [content, *styles]
    argv = [*positionals, *options] if draw(st.booleans()) else [*options, *positionals]
    return Case(("transfer", *argv))


def _switch_chunks(draw, switches, mode):
    """The on/off flags of a command line: each switch now and then, ``--quiet`` mostly, and in mixed
    mode sometimes a help flag."""
    chunks = [[switch] for switch in switches if draw(maybe(8))]
    if draw(st.integers(0, 9)) != 9:
        chunks.append(["--quiet"])
    if mode == "mixed" and draw(maybe(30)):
        chunks.append([draw(st.sampled_from(HELP))])
    return chunks


def _no_flag_cases(command):
    """Commands without options: the bare command, --help, or a bogus flag / extra argument."""
    return st.tuples(
        mix(
            st.just(()),
            st.sampled_from([("--bogus",), ("extra",), ("-x",), ("--quiet",), HELP[:1], HELP[1:]]),
        ),
        mix(st.just("real"), st.sampled_from(["empty", "corrupt"])),
    ).map(lambda t: Case((*command, *t[0]), home=t[1]))


@st.composite
def fetch_cases(draw):
    argv = ["weights", "fetch"]
    chunks = []
    arch = draw(mix(st.sampled_from([None, "vgg16", "vgg19"]), values("bogus", "VGG16", "")))
    if arch is not None:
        chunks.append([arch])
    if draw(maybe(2)):
        chunks.append(["--force"])
    if draw(st.integers(0, 3)) != 3:
        chunks.append(["--quiet"])
    if draw(maybe(20)):
        chunks.append([draw(st.sampled_from(["--bogus", "-h"]))])
    home = draw(st.sampled_from(["real", "real", "empty", "corrupt"]))
    return Case((*argv, *[t for c in draw(st.permutations(chunks)) for t in c]), home=home)


@st.composite
def info_cases(draw):
    chunks = []
    path = draw(
        mix(
            st.sampled_from([None, D("vgg16.h5"), D("vgg19.h5")]),
            values(*BAD_WEIGHTS, D("empty.png"), D("rgba.png")),
        )
    )
    if path is not None:
        chunks.append([path])
    if draw(maybe(2)):
        chunks.append(
            option_chunk(draw, "--arch", draw(mix(values("vgg16", "vgg19"), values("bogus", ""))))
        )
    if draw(maybe(2)):
        chunks.append(
            option_chunk(
                draw, "--flip-kernels", draw(mix(values("yes", "no", "auto"), values("bogus", "")))
            )
        )
    if draw(maybe(20)):
        chunks.append([draw(st.sampled_from(["--bogus", "-h"]))])
    home = draw(st.sampled_from(["real", "real", "empty", "corrupt"]))
    return Case(
        ("weights", "info", *[t for c in draw(st.permutations(chunks)) for t in c]), home=home
    )


# Patterns selecting few, fast checks (a full run takes minutes), or nothing.
GRADCHECK_PATTERNS = [
    "relu*",
    "relu",
    "avg_pool2d*",
    "max_pool2d*",
    "tv_loss *",
    "tv_loss keras",
    "content_loss *",
    "style_loss gram=plain",
    "zzz*",
    "[",
    "*pool2d",
]


@st.composite
def gradcheck_cases(draw):
    pattern = draw(st.sampled_from(GRADCHECK_PATTERNS))
    form = draw(
        mix(
            st.sampled_from(["-k", "--filter", "--filter="]),
            st.sampled_from(["-k-missing", "--bogus"]),
        )
    )
    if form == "--filter=":
        argv = [f"--filter={pattern}"]
    elif form == "-k-missing":
        argv = ["-k"]
    elif form == "--bogus":
        argv = ["-k", pattern, "--bogus"]
    else:
        argv = [form, pattern]
    if draw(maybe(2)):
        argv += option_chunk(
            draw, "--dtype", draw(mix(values("float64", "float32"), values("float16", "", "f32")))
        )
    if draw(maybe(2)):
        argv.append("--json")
    if draw(maybe(20)):
        argv.append("-h")
    return Case(("gradcheck", *argv))


@st.composite
def demo_cases(draw):
    def pick(valid, invalid, odds=4):
        return draw(mix(valid, invalid, odds))

    chunks = []
    outdir = pick(
        st.sampled_from([T("demo"), T("a/b/demo"), None]),  # None: the default ./minivgg-demo
        values(C("text.png"), C("content.png", "/sub"), D("text.png")),
    )
    if outdir is not None:
        chunks.append([draw(st.sampled_from(["-o", "--outdir"])), outdir])
    chunks.append(
        option_chunk(draw, "--size", pick(st.integers(16, 40).map(str), values("0", "-1", "x")))
    )
    chunks.append(
        option_chunk(draw, "--iters", pick(st.integers(1, 2).map(str), values("0", "-1", "x")))
    )
    if draw(st.integers(0, 5)) != 5:
        chunks.append(["--quiet"])
    if draw(maybe(30)):
        chunks.append([draw(st.sampled_from(["--bogus", "-h"]))])
    home = draw(st.sampled_from(["real"] * 5 + ["empty", "corrupt"]))
    return Case(("demo", *[t for c in draw(st.permutations(chunks)) for t in c]), home=home)


_BUSY: list = []


def _busy_port() -> str:
    """A port this test process listens on for the whole module: ``serve --port`` on it is exit 2."""
    if not _BUSY:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        _BUSY.append(sock)
    return str(_BUSY[0].getsockname()[1])


@st.composite
def serve_cases(draw):
    """``serve`` never serves here (that would block; ``test_studio.py`` serves for real): every case
    carries a bad value, the busy port when no other was drawn, or asks for --help."""
    chunks = []
    for flag, valid, invalid in (
        (
            "--host",
            values("127.0.0.1", "localhost"),
            values("no.such.host.invalid", "256.1.1.1", "203.0.113.7", ""),
        ),
        ("--port", st.just(_busy_port()), values("-1", "65536", "99999", "x", "1.5", "")),
        (
            "--runs",
            st.sampled_from([T("runs"), T("a/b/runs")]),
            values(C("text.png"), C("content.png", "/sub"), D("text.png")),
        ),
    ):
        if flag == "--port" or draw(maybe(2)):
            pool = invalid if draw(maybe(2)) else valid
            chunks.append(option_chunk(draw, flag, draw(pool)))
    if draw(maybe(3)):
        chunks.append(["--open"])
    if draw(maybe(20)):
        chunks.append([draw(st.sampled_from(HELP))])
    return Case(("serve", *[t for c in draw(st.permutations(chunks)) for t in c]))


# reconstruct: every flag with (valid, invalid) values; shallow taps keep the examples fast.
_RECON_TAPS = [
    "input",
    "block1_conv1",
    "conv1_2",
    "relu1_2",
    "pool1",
    "conv2_1",
    "block2_conv2",
    "relu3_1",
    "block4_conv2",
    "block5_conv1",
]
RECONSTRUCT_FLAGS = {
    "--layers": (
        st.lists(st.sampled_from(_RECON_TAPS), min_size=1, max_size=3).map(",".join),
        st.one_of(_bad_taps, values("", ",")),
    ),
    "--mode": (["content", "style"], ["bogus", "", "Content"]),
    "--size": (_SIZES, ["0", "-3", "1000000000", "1", "7", "x", ""]),
    "--iters": (st.integers(1, 3).map(str), ["0", "-1", "x"]),
    "--init": (
        ["noise", D("style2.png"), D("gray.png")],
        ["bogus", "", "random", D("text.png"), D("missing.png"), D("adir"), D("trunc.png")],
    ),
    "--seed": (["0", "1", "7"], ["-1", "x", "1.5"]),
    "--weights": (
        st.sampled_from([D("vgg16.h5"), D("vgg16.h5"), None]),
        [D("vgg19.h5"), *BAD_WEIGHTS],
    ),  # None: the real cache
    "--conv": (["auto", "im2col", "winograd"], ["bogus", ""]),
}


def _focused_draw(draw, flags):
    """``pick(flag)``: one factor (an entry of ``flags``) draws from its whole pool, valid and invalid,
    the others from their valid values (shrinking towards all valid); None when a flag is left out."""
    focus = draw(st.sampled_from(sorted(flags)))

    def pick(flag):
        valid, invalid = (as_strategy(v) for v in flags[flag])
        return draw(mix(valid, invalid, 1) if flag == focus else valid)

    return pick


@st.composite
def reconstruct_cases(draw):
    """One factor at a time (see ``_focused_draw``), over the image, the output folder and every flag."""
    pick = _focused_draw(
        draw,
        {
            **RECONSTRUCT_FLAGS,
            "image": (GOOD_IMAGES[:4], BAD_IMAGES),
            "-o": (
                [T("rec"), T("a/b/rec")],
                [C("text.png"), C("content.png", "/sub"), D("text.png")],
            ),
        },
    )
    chunks = [
        [draw(st.sampled_from(["-o", "--outdir"])), pick("-o")],
        option_chunk(draw, "--layers", pick("--layers")),
    ]
    for flag in ("--mode", "--size", "--iters", "--init", "--seed", "--weights", "--conv"):
        value = pick(flag)
        if value is not None and (flag in ("--size", "--iters", "--layers") or draw(maybe(2))):
            chunks.append(option_chunk(draw, flag, value) if flag != "--weights" else [flag, value])
    if draw(st.integers(0, 5)) != 5:
        chunks.append(["--quiet"])
    if draw(maybe(30)):
        chunks.append([draw(st.sampled_from(["--bogus", *HELP]))])
    return Case(
        ("reconstruct", pick("image"), *[t for c in draw(st.permutations(chunks)) for t in c])
    )


# inspect: the objective's flags of transfer, plus the evaluation point and the output folder.
INSPECT_OPTIONAL = {
    **{
        k: TRANSFER_OPTIONAL[k]
        for k in (
            "--preset",
            "--style-scale",
            "--content-weight",
            "--style-weight",
            "--tv-weight",
            "--content-layers",
            "--style-layers",
            "--style-layer-weights",
            "--pooling",
            "--flip-kernels",
            "--device",
            "--max-pixels",
            "--conv",
        )
    },
    "--at": (
        [D("style2.png"), D("content.png"), D("gray.png")],
        [D("missing.png"), D("text.png"), D("adir"), D("trunc.png"), "content"],
    ),
    "--style-blend-weights": (["1"], ["1,1", "0", "-1", "nan", "x", ""]),
}


@st.composite
def inspect_cases(draw):
    """One factor at a time (see ``_focused_draw``); a few other objective flags now and then; one style."""
    pick = _focused_draw(
        draw,
        {
            **INSPECT_OPTIONAL,
            "content": (GOOD_IMAGES[:4], BAD_IMAGES),
            "style": (GOOD_IMAGES[:4], BAD_IMAGES),
            "--size": (_SIZES, ["0", "-3", "1000000000", "7", "x"]),
            "--weights": (
                st.sampled_from([D("vgg16.h5")] * 3 + [None]),
                [D("vgg19.h5"), *BAD_WEIGHTS],
            ),
            "-o": (
                st.sampled_from([T("ins"), T("a/b/ins"), None]),
                [C("text.png"), C("content.png", "/sub")],
            ),
        },
    )
    chunks = [option_chunk(draw, "--size", pick("--size"))]
    preset = None
    for flag in INSPECT_OPTIONAL:
        if draw(maybe(6)):
            value = pick(flag)
            if value is not None:
                preset = value if flag == "--preset" else preset
                chunks.append(
                    option_chunk(draw, flag, value) if not isinstance(value, Ref) else [flag, value]
                )
    weights = pick("--weights")
    if preset in VGG19_PRESETS and weights == D("vgg16.h5"):
        weights = D("vgg19.h5")
    for flag, value in (
        ("--weights", weights),
        (draw(st.sampled_from(["-o", "--outdir"])), pick("-o")),
    ):
        if value is not None:
            chunks.append([flag, value])
    if draw(st.integers(0, 5)) != 5:
        chunks.append(["--quiet"])
    if draw(maybe(30)):
        chunks.append([draw(st.sampled_from(["--bogus", *HELP]))])
    return Case(
        (
            "inspect",
            pick("content"),
            pick("style"),
            *[t for c in draw(st.permutations(chunks)) for t in c],
        )
    )


# sweep and batch: every transfer flag but the outputs (-o is the folder), plus the grid or the CSV file,
# --report (a switch here), --scheduler (no valid value: a test must not depend on a running cluster;
# tests/test_sweep.py starts one) and --workers. At most four jobs of tiny images each.
SWEEP_OPTIONAL = {
    **{k: v for k, v in TRANSFER_OPTIONAL.items() if k not in ("--log", "--report", "--resume")},
    "--scheduler": (None, ["bogus", "tcp://", "tcp://127.0.0.1:x", "http://127.0.0.1:1"]),
}
SWEEP_SWITCHES = (*TRANSFER_SWITCHES, "--report")
SWEEP_GRIDS = (
    [
        "tv_weight=0,1e-3",
        "style_weight=1,10",
        "iters=1,2",
        "size=24,32",
        "seed=0,1",
        "pooling=avg,max",
        "content_layers=block1_conv1,relu1_2+pool1",
        "original_colors=yes,no",
        "match_color_histogram=off,pca",
        "init=content,noise",
    ],
    [
        "style_weight",
        "=1,2",
        "bogus=1,2",
        "style_weight=",
        "style_weight=1,,2",
        "style_weight=x",
        "size=1,1",
        "original_colors=maybe",
        "output=x.png",
        "iters=0,1",
        "tv_weight=-1,0",
        "content_layers=bogus",
        "match_color_histogram=PCA",
    ],
)
BATCH_FILES = {
    "jobs.csv": "content,style,output,tv_weight\ncontent.png,style.jpg,one,\ncontent.png,style.jpg;style2.png,two.jpg,1e-3\n",
    "jobs_one.csv": "content,style,original_colors\ncontent.png,gray.png,yes\n",
    "jobs_nostyle.csv": "content,output\ncontent.png,a\n",
    "jobs_bogus.csv": "content,style,bogus\ncontent.png,style.jpg,1\n",
    "jobs_badvalue.csv": "content,style,size\ncontent.png,style.jpg,x\n",
    "jobs_badimage.csv": "content,style\ncontent.png,style.jpg\nmissing.png,style.jpg\n",
    "jobs_dup.csv": "content,style,output\ncontent.png,style.jpg,a\ncontent.png,style.jpg,A.png\n",
    "jobs_sheet.csv": "content,style,output\ncontent.png,style.jpg,sheet\n",
    "jobs_empty.csv": "",
}


@st.composite
def _grids(draw, valid_only):
    keys = st.lists(
        st.sampled_from(SWEEP_GRIDS[0]), min_size=1, max_size=2, unique_by=lambda g: g.split("=")[0]
    )
    grids = draw(keys)
    if not valid_only:
        grids[draw(st.integers(0, len(grids) - 1))] = draw(st.sampled_from(SWEEP_GRIDS[1]))
    return grids


@st.composite
def sweep_cases(draw, command="sweep"):
    """As ``transfer_cases``: ``focus`` (one factor from its whole pool), ``valid`` or ``mixed`` runs of
    ``sweep`` (the grid a factor) or ``batch`` (the CSV file a factor)."""
    mode = draw(st.sampled_from(["focus", "valid", "mixed"]))
    inputs = ("content", "styles", "--grid") if command == "sweep" else ("jobs",)
    focus = (
        draw(
            st.sampled_from(
                [*inputs, "-o", "--size", "--iters", "--workers", "--weights", *SWEEP_OPTIONAL]
            )
        )
        if mode == "focus"
        else None
    )

    def pick(factor, valid, invalid, odds=3):
        if mode == "valid" or (mode == "focus" and factor != focus):
            return None if valid is None else draw(valid)
        if valid is None:
            return draw(invalid)
        return draw(mix(valid, invalid, 1 if factor == focus else odds))

    n_styles = draw(st.integers(1, 2))
    chunks = [
        [
            draw(st.sampled_from(["-o", "--outdir"])),
            pick(
                "-o",
                values(T("out"), T("a/b/out")),
                values(C("text.png"), C("content.png", "/sub"), D("text.png")),
                odds=7,
            ),
        ]
    ]
    if command == "sweep":
        positionals = [
            pick("content", values(*GOOD_IMAGES), values(*BAD_IMAGES), odds=7),
            *[
                pick("styles", values(*GOOD_IMAGES), values(*BAD_IMAGES), odds=7)
                for _ in range(n_styles)
            ],
        ]
        valid_grid = (
            mode == "valid"
            or (mode == "focus" and focus != "--grid")
            or draw(st.integers(0, 3)) != 3
        )
        chunks += [option_chunk(draw, "--grid", g) for g in draw(_grids(valid_grid))]
    else:
        positionals = [
            pick(
                "jobs",
                values(D("jobs.csv"), D("jobs_one.csv")),
                values(
                    *[D(n) for n in BATCH_FILES if n not in ("jobs.csv", "jobs_one.csv")],
                    D("missing.csv"),
                    D("adir"),
                    D("content.png"),
                ),
                odds=5,
            )
        ]
    chunks.append(
        option_chunk(
            draw,
            "--size",
            pick("--size", st.sampled_from(["24", "32"]), values("0", "x", "1"), odds=7),
        )
    )
    chunks.append(
        option_chunk(
            draw, "--iters", pick("--iters", values("1", "2"), values("0", "-1", "x"), odds=7)
        )
    )
    # One worker process mostly: tiny jobs finish before a second worker has started.
    workers = pick(
        "--workers", st.sampled_from(["1", "1", "1", "2", None]), values("0", "-1", "x"), odds=7
    )
    if workers is not None and focus != "--scheduler":
        chunks.append(option_chunk(draw, "--workers", workers))
    preset = None
    for flag, (valid, invalid) in SWEEP_OPTIONAL.items():
        if not (flag == focus or draw(maybe(12 if mode == "focus" else 8))):
            continue
        if flag == "--style-blend-weights":
            valid = (
                st.lists(_pos_floats, min_size=n_styles, max_size=n_styles).map(",".join)
                if command == "sweep"
                else None
            )  # a batch file's rows have one and two styles
        if flag in ("--content-masks", "--style-masks"):
            valid = (
                st.lists(
                    st.sampled_from(["mask_left.png", "mask_right.png"]),
                    min_size=n_styles,
                    max_size=n_styles,
                ).map(lambda names: DL(*names))
                if command == "sweep"
                else None
            )
        value = pick(flag, as_strategy(valid), as_strategy(invalid))
        if value is None:
            continue
        preset = value if flag == "--preset" else preset
        chunks.append(option_chunk(draw, flag, value))
    arch = "vgg19" if preset in VGG19_PRESETS else "vgg16"
    weights = pick(
        "--weights", st.sampled_from([D(f"{arch}.h5")] * 4 + [None]), values(*BAD_WEIGHTS), odds=5
    )
    if weights is not None:
        chunks.append(["--weights", weights])
    chunks += _switch_chunks(draw, SWEEP_SWITCHES, mode)
    options = [t for c in draw(st.permutations(chunks)) for t in c]
    argv = [*positionals, *options] if draw(st.booleans()) else [*options, *positionals]
    home = draw(st.sampled_from(["real"] * 6 + ["empty"])) if weights is None else "real"
    return Case((command, *argv), home=home)


def _sweep_ok(case, res):
    outdir, kind = Path(_option(res, "-o", "--outdir")), case.argv[0]
    try:
        summary = json.loads((outdir / f"{kind}.json").read_text())
    except Exception as exc:
        return [
            f"{outdir / f'{kind}.json'} is not a readable summary ({type(exc).__name__}: {exc})"
        ]
    problems = [
        f"job {j['name']} is {j['status']} after exit 0"
        for j in summary["jobs"]
        if j["status"] != "ok"
    ]
    problems += [
        p for j in summary["jobs"] for p in _image_problem(Path(j["image"]), f"job {j['name']}")
    ]
    problems += [p for path in summary["sheets"] for p in _image_problem(Path(path), "sheet")]
    return problems + ([] if "jobs ok" in res.stdout else ["no 'N of M jobs ok' line on stdout"])


# video: a 3-frame clip (mp4 with sound, or a folder of frames) at tiny sizes; every transfer flag but
# the outputs, plus the video's own. --workers draws only 0 as valid (flows in this process: starting a
# Dask cluster per example would cost seconds; tests/test_video.py runs one) and --scheduler, as for
# sweep, only invalid addresses.


def _video_files(d: Path, content) -> None:
    """``clip.mp4`` (3 frames 40x32, 10 fps, with sound), ``frames/`` (3 PNGs), ``mixed/`` (two sizes)."""
    (d / "frames").mkdir()
    (d / "mixed").mkdir()
    for k in range(3):
        Image.fromarray(np.roll(content, 2 * k, axis=1)).save(d / "frames" / f"f{k}.png")
    Image.fromarray(content).save(d / "mixed" / "1.png")
    Image.fromarray(content[:20]).save(d / "mixed" / "2.png")
    try:
        import imageio_ffmpeg
    except ImportError:  # without the video extra every video run is one sentence and exit 2
        return
    writer = imageio_ffmpeg.write_frames(str(d / "clip.mp4"), (40, 32), fps=10, macro_block_size=1)
    writer.send(None)
    for k in range(3):
        writer.send(np.ascontiguousarray(np.roll(content, 2 * k, axis=1)))
    writer.close()
    (d / "trunc.mp4").write_bytes((d / "clip.mp4").read_bytes()[:600])


VIDEO_FLAGS = {
    **{k: v for k, v in TRANSFER_OPTIONAL.items() if k not in ("--report", "--resume")},
    "--size": (_SIZES, ["0", "-3", "1000000000", "7", "x"]),
    "--iters": (st.integers(1, 2).map(str), ["0", "-1", "x"]),
    "--weights": (st.sampled_from([D("vgg16.h5")] * 4 + [None]), [D("vgg19.h5"), *BAD_WEIGHTS]),
    "--log": ([T("log.json")], [D("adir"), T("nodir/log.json"), T("out.mp4"), C("content.png")]),
    "--temporal-weight": (["0", "200", "1e8"], ["-1", "nan", "inf", "x", ""]),
    "--frames": (["0:2", "1:", ":2", "1:3"], ["x", "3:1", "5:9", "-1:2", "1:2:3", ""]),
    "--fps": (["5", "10", "12.5"], ["0", "-1", "x", "nan", "inf", "1e9"]),
    "--flow": (["dis", "farneback"], ["bogus", "", "DIS"]),
    "--workers": (["0"], ["-1", "x", "1.5"]),
    "--scheduler": (None, ["bogus", "tcp://", "tcp://127.0.0.1:x"]),
    "input": (
        [D("clip.mp4"), D("frames")],
        [D("missing.mp4"), D("text.png"), D("adir"), D("mixed"), D("trunc.mp4"), D("empty.png")],
    ),
    "styles": (GOOD_IMAGES[:3], BAD_IMAGES),
    "-o": (
        [T("out.mp4"), T("out.gif"), T("out.webm"), T("outframes")],
        [T("nodir/out.mp4"), T("out.txt"), C("text.png", "/sub"), D("clip.mp4")],
    ),
}


@st.composite
def video_cases(draw):
    """One factor at a time (see ``_focused_draw``) over the input, the output and every flag; the
    size, the iterations, the weights and --workers are always given, a few other flags now and then."""
    flags = {k: v for k, v in VIDEO_FLAGS.items() if k != "--style-blend-weights"}
    focus = draw(st.sampled_from(sorted(flags)))

    def pick(flag):  # as _focused_draw, and flags without a valid value (None) are left out
        valid, invalid = (as_strategy(v) for v in flags[flag])
        if flag == focus:
            return draw(invalid if valid is None else mix(valid, invalid, 1))
        return None if valid is None else draw(valid)

    chunks = [[draw(st.sampled_from(["-o", "--output"])), pick("-o")]]
    for flag in ("--size", "--iters", "--workers"):
        chunks.append(option_chunk(draw, flag, pick(flag)))
    weights = pick("--weights")
    if weights is not None:
        chunks.append(["--weights", weights])
    for flag in flags:
        if flag in ("input", "styles", "-o", "--size", "--iters", "--workers", "--weights"):
            continue
        if flag == focus or draw(maybe(8)):
            value = pick(flag)
            if value is not None:
                chunks.append(option_chunk(draw, flag, value))
    if draw(maybe(20)):  # blend weights: one per style image, or not
        chunks.append(
            option_chunk(draw, "--style-blend-weights", draw(values("1", "1,2", "-1", "x")))
        )
    chunks += _switch_chunks(draw, TRANSFER_SWITCHES, "mixed")
    return Case(
        (
            "video",
            pick("input"),
            pick("styles"),
            *[t for c in draw(st.permutations(chunks)) for t in c],
        )
    )


def _video_ok(case, res):
    out = Path(_option(res, "-o", "--output"))
    problems = [] if "wrote" in res.stdout else ["no 'wrote …' line on stdout"]
    if out.is_dir():
        frames = sorted(out.glob("frame_*.png"))
        problems += (
            _image_problem(frames[0], "first frame") if frames else [f"{out} holds no frames"]
        )
    else:
        try:
            import imageio_ffmpeg

            reader = imageio_ffmpeg.read_frames(str(out))
            next(reader)
            if not sum(1 for _ in reader):
                problems.append(f"{out} has no frames")
        except Exception as exc:
            problems.append(f"{out} is not a readable video ({type(exc).__name__}: {exc})")
    if Path(f"{out}.work").exists():
        problems.append("the work folder is left after a finished run")
    if _option(res, "--log"):
        problems += _json_problem(
            Path(_option(res, "--log")), "--log", keys=("settings", "records")
        )
    return problems


# --------------------------------------------------------------------- what a successful run shows


def _transfer_ok(case, res):
    out = Path(_option(res, "-o", "--output"))
    size = _option(res, "--size")
    scales = _option(res, "--scales")
    if scales:  # the last scale is the output's size
        size = scales.split(",")[-1]
    problems = _image_problem(
        out, "output", int(size) if size and size.lstrip("-").isdigit() else None
    )
    if "wrote" not in res.stdout:
        problems.append("no 'wrote …' line on stdout")
    if _option(res, "--log"):
        problems += _json_problem(Path(_option(res, "--log")), "--log")
    if _option(res, "--report"):
        problems += _image_problem(Path(_option(res, "--report")), "--report")
    return problems


def _demo_ok(case, res):
    outdir = Path(_option(res, "-o", "--outdir") or res.tmp / "minivgg-demo")
    return (
        _image_problem(outdir / "stylized.png", "demo output")
        + _image_problem(outdir / "report.png", "demo report")
        + _json_problem(outdir / "log.json", "demo log")
    )


def _serve_ok(case, res):
    return [] if "--help" in res.argv or "-h" in res.argv else ["serve exited 0 without --help"]


def _samples_ok(case, res):
    return [
        f"sample {name} not listed"
        for name in ("starry-night", "woman-with-hat")
        if name not in res.stdout
    ]


def _presets_ok(case, res):
    return [f"preset {p} not listed" for p in PRESETS if not re.search(rf"^{p}:", res.stdout, re.M)]


def _doctor_ok(case, res):
    return (
        []
        if "minivgg" in res.stdout and "weights vgg16" in res.stdout
        else ["no version/weights lines"]
    )


def _fetch_ok(case, res):
    last = _lines(res.stdout)[-1]
    return [] if Path(last).is_file() else [f"last stdout line {last!r} is not the cached file"]


def _info_ok(case, res):
    return [] if re.search(r"^arch:", res.stdout, re.M) else ["no 'arch:' line in the report"]


def _gradcheck_ok(case, res):
    if "--json" in res.argv:
        try:
            doc = json.loads(res.stdout)
        except ValueError as exc:
            return [f"--json printed no JSON document ({exc})"]
        return (
            []
            if doc.get("all_passed") and doc.get("checks")
            else ["the JSON document does not say all passed"]
        )
    return (
        []
        if re.search(r"^\d+ checks, all passed$", res.stdout, re.M)
        else ["no 'N checks, all passed' line"]
    )


def _reconstruct_ok(case, res):
    outdir = Path(_option(res, "-o", "--outdir"))
    layers = dict.fromkeys(t.strip() for t in _option(res, "--layers").split(",") if t.strip())
    problems = [
        p
        for layer in layers
        for p in _image_problem(outdir / f"{layer}.png", f"reconstruction {layer}")
    ]
    problems += _image_problem(outdir / "sheet.png", "sheet")
    return problems + ([] if "wrote" in res.stdout else ["no 'wrote …' line on stdout"])


def _inspect_ok(case, res):
    outdir = Path(_option(res, "-o", "--outdir") or res.tmp / "minivgg-inspect")
    try:
        files = json.loads((outdir / "inspect.json").read_text())["files"]
    except Exception as exc:
        return [
            f"{outdir / 'inspect.json'} is not readable JSON listing the pictures ({type(exc).__name__}: {exc})"
        ]
    return [p for name in ["summary.png", *files] for p in _image_problem(outdir / name, name)]


@dataclasses.dataclass(frozen=True)
class Command:
    cases: st.SearchStrategy  # of Case
    flags: frozenset  # every option string and positional dest the strategy draws
    check_ok: object  # (case, result) -> list of problems with an exit-0 run
    slow: bool = False  # more than a few seconds at the default example count (pyproject's `slow`)


COMMANDS = {
    "transfer": Command(
        transfer_cases(),
        frozenset(
            {
                "-o",
                "--output",
                "--size",
                "--iters",
                "--weights",
                "--quiet",
                *HELP,
                "content",
                "styles",
                *TRANSFER_OPTIONAL,
                *TRANSFER_SWITCHES,
            }
        ),
        _transfer_ok,
        slow=True,
    ),
    "presets": Command(_no_flag_cases(("presets",)), frozenset(HELP), _presets_ok),
    "doctor": Command(_no_flag_cases(("doctor",)), frozenset(HELP), _doctor_ok),
    "weights fetch": Command(
        fetch_cases(), frozenset({"arch", "--force", "--quiet", *HELP}), _fetch_ok
    ),
    "weights info": Command(
        info_cases(), frozenset({"path", "--arch", "--flip-kernels", *HELP}), _info_ok, slow=True
    ),
    "gradcheck": Command(
        gradcheck_cases(), frozenset({"-k", "--filter", "--dtype", "--json", *HELP}), _gradcheck_ok
    ),
    "demo": Command(
        demo_cases(),
        frozenset({"-o", "--outdir", "--size", "--iters", "--quiet", *HELP}),
        _demo_ok,
        slow=True,
    ),
    "serve": Command(
        serve_cases(), frozenset({"--host", "--port", "--runs", "--open", *HELP}), _serve_ok
    ),
    "samples": Command(_no_flag_cases(("samples",)), frozenset(HELP), _samples_ok),
    "reconstruct": Command(
        reconstruct_cases(),
        frozenset({"image", "-o", "--outdir", "--quiet", *HELP, *RECONSTRUCT_FLAGS}),
        _reconstruct_ok,
        slow=True,
    ),
    "inspect": Command(
        inspect_cases(),
        frozenset(
            {
                "content",
                "styles",
                "-o",
                "--outdir",
                "--size",
                "--weights",
                "--quiet",
                *HELP,
                *INSPECT_OPTIONAL,
            }
        ),
        _inspect_ok,
        slow=True,
    ),
    "sweep": Command(
        sweep_cases("sweep"),
        frozenset(
            {
                "content",
                "styles",
                "--grid",
                "-o",
                "--outdir",
                "--size",
                "--iters",
                "--workers",
                "--weights",
                "--quiet",
                *HELP,
                *SWEEP_OPTIONAL,
                *SWEEP_SWITCHES,
            }
        ),
        _sweep_ok,
        slow=True,
    ),
    "batch": Command(
        sweep_cases("batch"),
        frozenset(
            {
                "jobs",
                "-o",
                "--outdir",
                "--size",
                "--iters",
                "--workers",
                "--weights",
                "--quiet",
                *HELP,
                *SWEEP_OPTIONAL,
                *SWEEP_SWITCHES,
            }
        ),
        _sweep_ok,
        slow=True,
    ),
    "video": Command(
        video_cases(),
        frozenset(
            {
                "input",
                "styles",
                "-o",
                "--output",
                "--quiet",
                *HELP,
                *VIDEO_FLAGS,
                *TRANSFER_SWITCHES,
            }
        ),
        _video_ok,
        slow=True,
    ),
}


# ------------------------------------------------------------------------- one factor at a time
# A plain valid run with one flag (or input) changed, for every value of every flag's pool: finds each
# single-value bug deterministically, where random draws of ~150 (flag, value) pairs would need
# hundreds of examples. The property above looks for the bugs of combinations.

TRANSFER_SWEEP_BASE = (
    D("content.png"),
    D("style.jpg"),
    "-o",
    T("out.png"),
    "--weights",
    D("vgg16.h5"),
    "--size",
    "32",
    "--iters",
    "1",
    "--quiet",
)
_TAP_SWEEP = [
    *VGG16_TAPS,
    "input,block4_conv2",
    "relu1_1, pool1",
    *BAD_TAPS,
    "block4_conv2,bogus",
    "",
]
_LIST_SWEEP = [
    "1",
    "0.2,0.2,0.2,0.2,0.2",
    "1,2",
    "0,0,0,0,0",
    "-1,1,1,1,1",
    "nan,1,1,1,1",
    "inf,1,1,1,1",
    "",
    ",",
    "1,,2",
    "a,b",
]
_SWEEP_EXTRA = {
    "--content-layers": _TAP_SWEEP,
    "--style-layers": _TAP_SWEEP,
    "--style-layer-weights": _LIST_SWEEP,
    "--style-blend-weights": ["1", "2", "1,1", "0", "-1", "nan", "inf", "x", ""],
}


def _replace(argv, flag, value):
    """``argv`` with ``flag``'s value replaced (or the flag added; value None removes it)."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == flag:
            i += 2
            continue
        out.append(argv[i])
        i += 1
    if value is None:
        return out
    if isinstance(value, str) and value.startswith("-"):
        return [*out, f"{flag}={value}"]
    return [*out, flag, value]


def _sweep_id(tokens):
    return " ".join(repr(t) if isinstance(t, Ref) else (t or "''") for t in tokens)


def transfer_sweep():
    base = list(TRANSFER_SWEEP_BASE)
    cases = []  # (id, argv)

    def add(label, argv):
        cases.append((label, ("transfer", *argv)))

    for img in GOOD_IMAGES[1:] + BAD_IMAGES:
        add(f"content={img!r}", [img, *base[1:]])
        add(f"style={img!r}", [base[0], img, *base[2:]])
    add("two styles", [*base[:2], D("style2.png"), *base[2:]])
    add(
        "content=rgba (a note on stderr), then an error",
        [D("rgba.png"), D("missing.png"), *base[2:]],
    )
    add("-o=content", [C("content.png"), base[1], *_replace(base[2:], "-o", C("content.png"))])
    for out in [T("out.jpg"), D("adir"), T("nodir/out.png"), T("out.txt"), T("out")]:
        add(f"-o {out!r}", _replace(base, "-o", out))
    for size in ["16", "17", "20", "48", "0", "-3", "1000000000", "1", "7", "x", "2.5", ""]:
        add(f"--size {size or repr(size)}", _replace(base, "--size", size))
    for iters in ["3", "0", "-1", "x"]:
        add(f"--iters {iters}", _replace(base, "--iters", iters))
    for w in [None, D("vgg19.h5"), *BAD_WEIGHTS]:
        add(f"--weights {w!r}", _replace(base, "--weights", w))
    add("not --quiet", [t for t in base if t != "--quiet"])
    for flag, (valid, invalid) in TRANSFER_OPTIONAL.items():
        pool = _SWEEP_EXTRA.get(flag) or [*(valid or []), *invalid]
        for v in pool:
            add(f"{flag} {_sweep_id([v])}", _replace(base, flag, v))
    for preset in sorted(VGG19_PRESETS):
        add(
            f"--preset {preset} with vgg19 weights",
            _replace(_replace(base, "--preset", preset), "--weights", D("vgg19.h5")),
        )
    return cases


def demo_sweep():
    base = ["demo", "-o", T("demo"), "--size", "32", "--iters", "1", "--quiet"]
    cases = [
        ("plain", base),
        ("default outdir", _replace(base, "-o", None)),
        ("not --quiet", [t for t in base if t != "--quiet"]),
    ]
    for out in [T("a/b/demo"), C("text.png"), C("content.png", "/sub")]:
        cases.append((f"-o {out!r}", _replace(base, "-o", out)))
    for size in ["16", "40", "0", "-1", "x"]:
        cases.append((f"--size {size}", _replace(base, "--size", size)))
    for iters in ["2", "0", "-1", "x"]:
        cases.append((f"--iters {iters}", _replace(base, "--iters", iters)))
    cases = [(label, tuple(argv), "real") for label, argv in cases]
    cases += [
        ("empty cache", tuple(base), "empty"),
        ("corrupt cache", tuple(base), "corrupt"),
        ("empty cache, not --quiet", tuple(t for t in base if t != "--quiet"), "empty"),
    ]
    return cases


SWEEP = [
    pytest.param("transfer", Case(argv), id=f"transfer[{label}]")
    for label, argv in transfer_sweep()
] + [
    pytest.param("demo", Case(argv, home), id=f"demo[{label}]")
    for label, argv, home in demo_sweep()
]


def _settings(n):
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if SHRINK else [])
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        phases=phases,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
        print_blob=False,
    )


@pytest.fixture
def shrink_budget():
    """Per test: when its first failure was seen and which drawn cases failed. Once shrinking has run
    SHRINK_SECONDS past the first failure, cases not known to fail are rejected without running, so
    the shrinker winds down in moments instead of minutes (known failures still replay)."""
    return {"first_failure": None, "failing": set()}


def _run_and_check(command, case, data, budget):
    key = repr(case)
    if (
        budget["first_failure"] is not None
        and key not in budget["failing"]
        and time.monotonic() - budget["first_failure"] > SHRINK_SECONDS
    ):
        reject()
    note(key)
    res = run_case(case, data)
    try:
        check_contract(case, res, COMMANDS[command].check_ok)
    except ContractViolation:
        budget["failing"].add(key)
        if budget["first_failure"] is None:
            budget["first_failure"] = time.monotonic()
        raise  # keep $TMP for a look
    shutil.rmtree(res.tmp, ignore_errors=True)


# ----------------------------------------------------------------------------------------- tests


def parser_commands(parser: argparse.ArgumentParser, prefix=()):
    """``{"transfer": subparser, "weights fetch": subparser, …}``: every leaf subcommand of the parser."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                    found.update(parser_commands(sub, (*prefix, name)))
                else:
                    found[" ".join((*prefix, name))] = sub
    return found


def test_every_command_has_a_strategy():
    listed = parser_commands(cli.build_parser())
    missing = sorted(set(listed) - set(COMMANDS))
    assert not missing, f"subcommands without a strategy in COMMANDS of {__file__}: {missing}"
    gone = sorted(set(COMMANDS) - set(listed))
    assert not gone, (
        f"`minivgg --help` no longer lists {gone} (a subcommand module failed to register?)"
    )


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_flag_is_drawn(command):
    sub = parser_commands(cli.build_parser()).get(command)
    if sub is None:
        pytest.fail(f"`minivgg {command}` is not in the parser")
    flags = {s for a in sub._actions for s in (a.option_strings or [a.dest])}
    undrawn = sorted(flags - COMMANDS[command].flags)
    assert not undrawn, f"`minivgg {command}` has flags its strategy never draws: {undrawn}"


def _command_params(only_slow=False):
    return [
        pytest.param(name, id=name, marks=[pytest.mark.slow] if spec.slow and not only_slow else [])
        for name, spec in sorted(COMMANDS.items())
        if spec.slow or not only_slow
    ]


@pytest.mark.parametrize("command", _command_params())
@_settings(EXAMPLES)
@given(draw=st.data())
def test_cli_contract(command, draw, data, offline, shrink_budget):
    """MINIVGG_CLI_EXAMPLES drawn command lines of ``command`` keep the exit-code contract."""
    _run_and_check(command, draw.draw(COMMANDS[command].cases, label="case"), data, shrink_budget)


@pytest.mark.parametrize("command", _command_params(only_slow=True))
@_settings(QUICK_EXAMPLES)
@given(draw=st.data())
def test_cli_contract_quick(command, draw, data, offline, shrink_budget):
    """A few examples of the slow commands, so that the fast subset (-m 'not slow') covers every command."""
    _run_and_check(command, draw.draw(COMMANDS[command].cases, label="case"), data, shrink_budget)


@pytest.mark.slow
@pytest.mark.parametrize("command, case", SWEEP)
def test_one_factor(command, case, data, offline):
    """A plain run with one value changed keeps the contract (every value of every pool, in turn)."""
    res = run_case(case, data)
    check_contract(case, res, COMMANDS[command].check_ok)
    shutil.rmtree(res.tmp, ignore_errors=True)


# Fixed command lines run on every test run: bugs found before, and one plain run per command.
# expect: the exit codes allowed (None: the contract, 0 or 2).
PINNED = [
    (
        "transfer",
        "plain",
        (
            D("content.png"),
            D("style.jpg"),
            "-o",
            T("out.png"),
            "--weights",
            D("vgg16.h5"),
            "--size",
            "32",
            "--iters",
            "1",
            "--quiet",
        ),
        {0},
    ),
    (
        "transfer",
        "input-taps",
        (
            D("content.png"),
            D("style.jpg"),
            "-o",
            T("out.png"),
            "--weights",
            D("vgg16.h5"),
            "--size",
            "32",
            "--iters",
            "1",
            "--quiet",
            "--content-layers",
            "input",
            "--style-layers",
            "input",
        ),
        {0},
    ),
    (
        "transfer",
        "seed-negative",
        (
            D("content.png"),
            D("style.jpg"),
            "-o",
            T("out.png"),
            "--weights",
            D("vgg16.h5"),
            "--size",
            "32",
            "--iters",
            "1",
            "--quiet",
            "--seed",
            "-1",
        ),
        None,
    ),
    (
        "transfer",
        "device-gpu",
        (
            D("content.png"),
            D("style.jpg"),
            "-o",
            T("out.png"),
            "--weights",
            D("vgg16.h5"),
            "--size",
            "32",
            "--iters",
            "1",
            "--quiet",
            "--device",
            "gpu",
        ),
        None,
    ),
    (
        "transfer",
        "size-huge",
        (
            D("content.png"),
            D("style.jpg"),
            "-o",
            T("out.png"),
            "--weights",
            D("vgg16.h5"),
            "--size",
            "1000000000",
            "--iters",
            "1",
            "--quiet",
        ),
        {2},
    ),
    (
        "transfer",
        "vgg19-preset-vgg16-file",
        (
            D("content.png"),
            D("style.jpg"),
            "-o",
            T("out.png"),
            "--weights",
            D("vgg16.h5"),
            "--size",
            "32",
            "--iters",
            "1",
            "--quiet",
            "--preset",
            "d2l",
        ),
        {2},
    ),
    ("presets", "plain", (), {0}),
    ("presets", "bogus-flag", ("--bogus",), {2}),
    ("doctor", "plain", (), {0}),
    ("gradcheck", "tv", ("-k", "tv_loss *"), {0}),
    ("gradcheck", "tv-float32-json", ("-k", "tv_loss *", "--dtype", "float32", "--json"), {0}),
    ("weights info", "synthetic", (D("vgg16.h5"),), None),
    ("weights fetch", "bogus-arch", ("bogus", "--quiet"), {2}),
    (
        "sweep",
        "plain",
        (
            D("content.png"),
            D("style.jpg"),
            "--grid",
            "tv_weight=0,1e-3",
            "-o",
            T("out"),
            "--weights",
            D("vgg16.h5"),
            "--size",
            "24",
            "--iters",
            "1",
            "--workers",
            "1",
            "--quiet",
        ),
        {0},
    ),
    (
        "sweep",
        "bad-grid",
        (D("content.png"), D("style.jpg"), "--grid", "style_weight=x", "-o", T("out")),
        {2},
    ),
    ("batch", "bogus-column", (D("jobs_bogus.csv"), "-o", T("out")), {2}),
    (
        "video",
        "plain",
        (
            D("clip.mp4"),
            D("style.jpg"),
            "-o",
            T("out.mp4"),
            "--weights",
            D("vgg16.h5"),
            "--size",
            "32",
            "--iters",
            "1",
            "--workers",
            "0",
            "--quiet",
        ),
        {0},
    ),
]


@pytest.mark.parametrize(
    "command, argv, expect",
    [pytest.param(c, a, e, id=f"{c}-{name}".replace(" ", "-")) for c, name, a, e in PINNED],
)
def test_pinned_case(command, argv, expect, data, offline):
    case = Case((*command.split(), *argv))
    res = run_case(case, data)
    check_contract(case, res, COMMANDS[command].check_ok)
    if expect is not None and res.code not in expect:
        problem = f"exit {res.code}, expected {sorted(expect)}"
        raise _violation(f"pinned_exit{res.code}")(_describe(case, res, problem))
    shutil.rmtree(res.tmp, ignore_errors=True)
