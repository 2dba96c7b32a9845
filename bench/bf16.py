"""``python -m bench.bf16``: would bfloat16 convolutions pay on this CPU? (issue 25)

At 512 px (tubingen.jpg, starry_night.jpg, longest side 512), VGG16 up to ``block5_conv1``: (1) per
conv layer, the error against float64 of the forward output (real input: a float32 pass of the
content image) and of the backward-data gradient (real output gradient: a float32 evaluation at the
bench's start point), with bf16 emulated in NumPy (``bf16``: round to nearest even; products and
sums in float32) for im2col (both GEMM operands rounded) and Winograd F(4x4, 3x3) (the engine's
transforms; transformed tiles and filters rounded before the 36 GEMMs), see ``bf16_convs``; (2) the
objective's pixel gradient with every conv so emulated, and ``TorchObjective`` under
``torch.autocast('cpu', dtype=torch.bfloat16)``; (3) torch's convs at the same shapes and a
4096x2304 @ 2304x256 matmul in float32 and bfloat16, interleaved, and the oneDNN kernels that ran.
Writes ``bench/results/bf16.md`` and ``bf16.json`` and regenerates the index (``--out``: elsewhere).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import types
from pathlib import Path
from unittest import mock

import numpy as np

from minivgg.engine import ops, winograd
from minivgg.engine.im2col import conv_gemm, conv_gemm_adjoint

from . import environment, evaluation
from .index import RESULTS_DIR, save_page
from .timing import interleaved

PAGE = RESULTS_DIR / "bf16.md"
DEEPEST, SIZE, GEMM = "block5_conv1", 512, (4096, 2304, 256)
VARIANTS = ("im2col fp32", "im2col bf16", "winograd fp32", "winograd bf16")
CONFIGS = ("fp32 NCHW", "bf16 NCHW", "fp32 channels_last", "bf16 channels_last")
SIMD = "sse4_2 avx avx2 fma f16c avx_vnni avx512f avx512_bf16 amx_bf16".split()
VERBOSE_CHILD = """import torch, torch.nn.functional as F
x, w, cl = torch.randn(1, 64, 48, 64), torch.randn(64, 64, 3, 3), torch.channels_last
with torch.no_grad():
    for t in (torch.float32, torch.bfloat16):
        print('CASE conv NCHW', t, flush=True); F.conv2d(x.to(t), w.to(t), padding=1)
        print('CASE conv channels_last', t, flush=True)
        F.conv2d(x.to(t, memory_format=cl), w.to(t, memory_format=cl), padding=1)
        print('CASE matmul', t, flush=True)
        torch.ones(256, 256, dtype=t) @ torch.ones(256, 256, dtype=t)
"""
PAGE_TEMPLATE = """# bfloat16 convolutions on this CPU (issue 25)

`{c[command]}`, {c[date]}. {c[cpu]} ({c[flags][model]}). /proc/cpuinfo flags: {c[flags][present]};
**not** {c[flags][absent]}; avx512* flags: {c[flags][avx512]}. torch: {c[torch_isa]}.
{c[versions]}. {c[threads]} threads in every pool. Load average {c[load_start]} at the start,
{c[load_end]} at the end (a shared 2-core VM with other benchmarks running: times are noisy; fp32
and bf16 ran interleaved). Content {c[content]}, style {c[style]}; {c[weights]}. The bf16 emulation
is {c[bf16_emulation]}.

## Verdict

No. This CPU has no bf16 arithmetic: without `avx512_bf16` (`vdpbf16ps`) or AMX, a bf16 kernel has
to widen to float32 and run the same float32 FMAs, saving only memory traffic, and VGG's convs are
compute-bound GEMMs. torch's bf16 kernels here are slower ({dnnl}; torch's bf16 check wants
AVX-512): convs {slow[cl]:.1f}× slower than float32 in channels_last and {slow[nchw]:.0f}× in
NCHW, the 4096x2304 @ 2304x256 matmul {slow[gemm]:.0f}×, a whole autocast evaluation
{slow[eval]:.0f}×. The precision would be affordable where bf16 is fast: with bf16 GEMM operands
one conv is off by {span_bf16} (relative L2, forward, im2col; float32: {span_fp32}) and the
objective's pixel gradient by {gi[grad_rel_l2]:.1e} (cosine {gi[cosine]:.5f}), as with torch's
autocast; Winograd F(4x4) amplifies the rounding ({wino:.0f}× im2col's error, median over layers;
gradient {gw[grad_rel_l2]:.1e}, cosine {gw[cosine]:.5f}). A bf16 kernel could pay on Zen 4 or
Intel Cooper Lake (`avx512_bf16`: `vdpbf16ps` does two products per float32 lane, up to about twice
the float32 FMA rate) and on Sapphire Rapids or later (AMX-BF16, many times more), as im2col/GEMM
rather than Winograd, and only if L-BFGS tolerates such a gradient (not tested here).

## Error of one conv layer against float64

Relative L2 error ‖y − y₆₄‖/‖y₆₄‖, in brackets max|y − y₆₄| / max|y₆₄|; y₆₄ is the float64 conv of
the same float32 operands, so the fp32 columns are float32's own error and the bf16 columns, to
within it, the error against float32. Forward: the layer's input from a float32 pass of the content
image, bias included. Backward-data: gx = convᵀ(gy), gy the layer's output gradient in a float32
evaluation at the bench's start point (content + uniform(±16) noise, seed 0).

{forward}

{backward}

## Error of the objective's pixel gradient

The `gatys` objective at the start point, float32 targets, against float32. minivgg: every conv
(forward and backward-data) with bf16 GEMM operands as above, by wrapping the engine's convs.
torch: `TorchObjective` (channels_last) under `torch.autocast('cpu', dtype=torch.bfloat16)`, which
also keeps activations and the Gram matmuls in bf16.

{gradient}

## Speed of torch's bf16 on this CPU

Seconds per conv at the shapes above (batch 1, pad 1, no bias, `torch.no_grad`, bf16 tensors),
median of {c[repeats]} interleaved runs after a warm-up; bf16 NCHW, minutes per pass, one cold run.

{speed}

Matmul 4096x2304 @ 2304x256, median of {c[repeats]}: fp32 {sp[gemm][fp32]:.3f} s
({gflops[fp32]:.0f} GFLOP/s), bf16 {sp[gemm][bf16]:.3f} s ({gflops[bf16]:.1f} GFLOP/s). One
evaluation of the objective in torch (channels_last; one run each after a float32 warm-up): fp32
{sp[objective][fp32]:.2f} s, autocast bf16 {sp[objective][autocast bf16]:.2f} s.

oneDNN primitives that ran (`ONEDNN_VERBOSE=1`: a 64→64 conv at 48×64, a 256² matmul; ISA
{sp[onednn][isa]}); where none did, ATen's own kernel ran (for the fp32 matmul, MKL's sgemm):

{onednn}
"""


def bf16(a) -> np.ndarray:
    """``a`` rounded to bfloat16 (round to nearest, ties to even), as float32."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    u = u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))  # ties to the even one
    return (u & np.uint32(0xFFFF0000)).view(np.float32)


@contextlib.contextmanager
def bf16_convs():
    """Every engine conv with bf16-rounded GEMM operands (im2col: x or gy, and w, since the patch
    matrix only copies x; Winograd: the transformed tiles V and filters U)."""
    real = winograd.cpu_kernels

    def kernels(*arrays):  # the Numba module, its matmul fed rounded operands
        k = real(*arrays)
        assert k is not None, "Winograd F(4x4) runs on the Numba kernels only"
        mm = lambda a, b, out=None, trans_a=False: k.matmul(bf16(a), bf16(b), out, trans_a=trans_a)
        return types.SimpleNamespace(**{**vars(k), "matmul": mm})

    def fwd(x, w, b=None, stride=1, pad=0):
        return conv_gemm(bf16(x), bf16(w), b, stride, pad)

    def adj(gy, w, xshape, stride=1, pad=0, accumulate_into=None):
        return conv_gemm_adjoint(bf16(gy), bf16(w), xshape, stride, pad, accumulate_into)

    with (
        mock.patch.object(winograd, "cpu_kernels", kernels),
        mock.patch.object(ops, "conv_gemm", fwd),
        mock.patch.object(ops, "conv_gemm_adjoint", adj),
    ):
        yield


def _conv(alg, x, w, b, adjoint):
    if alg == "winograd":
        return winograd.conv3x3_same(x, w, adjoint=adjoint, bias=b)
    if adjoint:
        return ops.conv_gemm_adjoint(x, w, (1, w.shape[1]) + x.shape[2:], 1, 1)
    return ops.conv_gemm(x, w, b, 1, 1)


def errors(y, ref) -> dict:
    d = np.abs(y.astype(np.float64) - ref)
    rel_l2 = np.linalg.norm(d) / np.linalg.norm(ref)
    return {"rel_l2": float(rel_l2), "max_rel": float(d.max() / np.abs(ref).max())}


def load(images: Path) -> list[np.ndarray]:
    """Content and style, RGB uint8, longest side ``SIZE`` (aspect kept)."""
    from PIL import Image

    out = []
    for name in (evaluation.CONTENT_IMAGE, evaluation.STYLE_IMAGE):
        with Image.open(images / name) as im:
            s = SIZE / max(im.size)
            size = (round(im.width * s), round(im.height * s))
            out.append(np.asarray(im.convert("RGB").resize(size, Image.LANCZOS)))
    return out


def record(net, content, style, x0):
    """Each conv's input in a float32 pass of ``content``, its output gradient in a float32
    (Winograd) evaluation of the objective at ``x0``, and that evaluation's ``(loss, grad)``."""
    from minivgg.style.objective import Objective

    names, inputs, grads = {id(w): n for n, (w, _) in net.params.items()}, {}, {}
    fwd, bwd = ops.conv2d_forward, ops.conv2d_backward

    def keep_x(x, w, *args, **kw):
        inputs[names[id(w)]] = x.copy()
        return fwd(x, w, *args, **kw)

    def keep_gy(gy, cache, *args, **kw):
        grads[names[id(cache[1])]] = gy.copy()
        return bwd(gy, cache, *args, **kw)

    with mock.patch.object(ops, "conv2d_forward", keep_x):
        net.features(net.preprocess(content), [DEEPEST], keep_tape=False)
    objective = Objective(net, content, style, preset=evaluation.PRESET)
    with mock.patch.object(ops, "conv2d_backward", keep_gy):
        return inputs, grads, _copy(objective.value_and_grad(x0))


def layer_table(net, inputs, grads) -> list[dict]:
    rows = []
    for name, x in inputs.items():
        w, b = net.params[name]
        row = {"layer": name, "shape": [x.shape[1], w.shape[0], *x.shape[2:]]}
        for direction, a, bias in (("forward", x, b), ("backward", grads[name], None)):
            f64 = lambda v: None if v is None else v.astype(np.float64)
            ref = _conv("im2col", f64(a), f64(w), f64(bias), bias is None)
            for v in VARIANTS:
                with bf16_convs() if v.endswith("bf16") else contextlib.nullcontext():
                    y = _conv(v.split()[0], a, w, bias, bias is None)
                row[f"{direction} {v}"] = errors(y, ref)
        rows.append(row)
        print(name, {k: f"{v['rel_l2']:.1e}" for k, v in row.items() if "shape" != k != "layer"})
    return rows


def compare(a, b) -> dict:
    """``a = (loss, grad)`` against the reference ``b``."""
    (la, ga), (lb, gb) = a, b
    d, norm = ga - gb, np.linalg.norm
    return {
        "loss_rel": abs(la - lb) / abs(lb),
        "grad_rel_l2": float(norm(d) / norm(gb)),
        "grad_max_rel": float(np.abs(d).max() / np.abs(gb).max()),
        "cosine": float(np.vdot(ga, gb) / (norm(ga) * norm(gb))),
    }


def _copy(r):
    return float(r[0]), np.array(r[1], dtype=np.float64, copy=True)


def gradient_table(net, content, style, winograd32, x0) -> tuple[dict, dict]:
    """Pixel-gradient errors of bf16 convs (minivgg emulated, torch autocast); torch's seconds."""
    from minivgg.style.objective import Objective

    from .torch_objective import TorchObjective

    out, refs, preset = {}, {"winograd": winograd32}, evaluation.PRESET
    for alg in ("winograd", "im2col"):
        obj = Objective(dataclasses.replace(net, conv=alg), content, style, preset=preset)
        refs[alg] = refs.get(alg) or _copy(obj.value_and_grad(x0))
        with bf16_convs():
            got = _copy(obj.value_and_grad(x0))
        out[f"minivgg {alg}: bf16 convs vs fp32"] = compare(got, refs[alg])
    out["minivgg fp32: Winograd vs im2col (float32 noise)"] = compare(*refs.values())
    torch = environment.import_torch()
    peer, got = TorchObjective(net, content, style, preset, config="channels_last"), {}
    peer.value_and_grad(x0)  # warm-up; an autocast evaluation takes minutes: one timed run each

    def run(name, ctx):
        with ctx:
            got[name] = _copy(peer.value_and_grad(x0))

    bf = lambda: run("bf16", torch.autocast("cpu", dtype=torch.bfloat16))
    times = interleaved({"fp32": lambda: run("fp32", contextlib.nullcontext()), "bf16": bf}, 1, 0)
    out["torch channels_last: autocast bf16 vs fp32"] = compare(got["bf16"], got["fp32"])
    return out, {"fp32": times["fp32"][0], "autocast bf16": times["bf16"][0]}


def torch_speed(rows, repeats) -> tuple[dict, dict]:
    """Median seconds of torch's conv per layer and configuration, and of the matmul."""
    torch = environment.import_torch()
    gen = torch.Generator().manual_seed(0)
    med = lambda times: {k: statistics.median(v) for k, v in times.items()}
    convs = {}
    for row in rows:
        c, o, h, w = row["shape"]
        x, k = torch.randn(1, c, h, w, generator=gen), torch.randn(o, c, 3, 3, generator=gen) * 0.05
        fns = {}
        for cfg in CONFIGS:
            t, last = torch.bfloat16 if "bf16" in cfg else torch.float32, "last" in cfg
            fmt = torch.channels_last if last else torch.contiguous_format
            xx, kk = (a.to(t, memory_format=fmt) for a in (x, k))
            fns[cfg] = lambda xx=xx, kk=kk: torch.nn.functional.conv2d(xx, kk, padding=1)
        with torch.no_grad():  # bf16 NCHW is ATen's slow path (minutes per pass): one cold run
            slow = interleaved({"bf16 NCHW": fns.pop("bf16 NCHW")}, 1, 0)
            convs[row["layer"]] = med({**interleaved(fns, repeats), **slow})
        print(row["layer"], {k: round(v, 3) for k, v in convs[row["layer"]].items()}, flush=True)
    a, b = torch.randn(GEMM[:2], generator=gen), torch.randn(GEMM[1:], generator=gen)
    a16, b16 = a.bfloat16(), b.bfloat16()
    return convs, med(interleaved({"fp32": lambda: a @ b, "bf16": lambda: a16 @ b16}, repeats))


def onednn_kernels(threads: int) -> dict:
    """``{case: ["kind impl (src dtype)", ...], "isa": ...}`` from a child's ONEDNN_VERBOSE log."""
    env = {**environment.thread_env(threads), "ONEDNN_VERBOSE": "1"}
    run = subprocess.run([sys.executable, "-c", VERBOSE_CHILD], env=env, capture_output=True)
    out, case = {}, None
    for line in run.stdout.decode().splitlines():
        f = line.split(",")
        if line.startswith("CASE "):
            case = out.setdefault(line[5:].replace("torch.", ""), [])
        elif "isa:" in line:
            out["isa"] = line.split("isa:", 1)[1]
        elif "exec" in f and case is not None:
            i, src = f.index("exec"), next((g.split(":")[1] for g in f if g.startswith("src")), "?")
            if (kernel := f"{f[i + 2]} {f[i + 3]} ({src})") not in case:
                case.append(kernel)
    return {k: v or ["no oneDNN primitive"] for k, v in out.items()}


def cpuinfo() -> dict:
    """Family and model, and the SIMD flags present and absent, from /proc/cpuinfo."""
    info = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        info.setdefault(line.partition(":")[0].strip(), line.partition(":")[2].strip())
    flags = set(info.get("flags", "").split())
    return {
        "model": f"cpu family {info.get('cpu family')}, model {info.get('model')}",
        "present": ", ".join(f for f in SIMD if f in flags),
        "absent": ", ".join(f for f in SIMD if f not in flags),
        "avx512": ", ".join(sorted(f for f in flags if f.startswith("avx512"))) or "none at all",
    }


def _table(header, rows) -> str:
    lines = [header, ["---"] + ["---:"] * (len(header) - 1), *rows]
    return "\n".join("| " + " | ".join(map(str, cells)) + " |" for cells in lines)


def render(d: dict) -> str:
    c, rows, g, sp = d["conditions"], d["layers"], d["gradient"], d["speed"]
    total = {k: sum(t[k] for t in sp["convs"].values()) for k in CONFIGS}
    ratio = lambda t, f: t[f"bf16 {f}"] / t[f"fp32 {f}"]
    span = lambda key: "–".join(f"{f(r[key]['rel_l2'] for r in rows):.1e}" for f in (min, max))
    err = lambda e: f"{e['rel_l2']:.1e} ({e['max_rel']:.1e})"
    shape = lambda r: "{}→{}, {}×{}".format(*r["shape"])
    layers = {
        k: _table(
            [k, "C→O, H×W", *VARIANTS],
            [[r["layer"], shape(r), *(err(r[f"{k} {v}"]) for v in VARIANTS)] for r in rows],
        )
        for k in ("forward", "backward")
    }
    speed = [
        [n, *(f"{t[k]:.3f}" for k in CONFIGS), f"{ratio(t, 'NCHW'):.1f}×"]
        + [f"{ratio(t, 'channels_last'):.1f}×"]
        for n, t in [*sp["convs"].items(), ("**total**", total)]
    ]
    keys = ("loss_rel", "grad_rel_l2", "grad_max_rel")
    grads = [[k, *(f"{v[n]:.1e}" for n in keys), f"{v['cosine']:.6f}"] for k, v in g.items()]
    dnnl = [k for k, v in sp["onednn"].items() if "bfloat16" in k and "oneDNN" not in v[0]]
    rel = lambda r, k, alg: r[f"{k} {alg} bf16"]["rel_l2"]
    wino = [
        rel(r, k, "winograd") / rel(r, k, "im2col") for r in rows for k in ("forward", "backward")
    ]
    text = PAGE_TEMPLATE.format(
        c=c,
        sp=sp,
        gi=g["minivgg im2col: bf16 convs vs fp32"],
        gw=g["minivgg winograd: bf16 convs vs fp32"],
        slow={"cl": ratio(total, "channels_last"), "nchw": ratio(total, "NCHW")}
        | {"gemm": sp["gemm"]["bf16"] / sp["gemm"]["fp32"]}
        | {"eval": sp["objective"]["autocast bf16"] / sp["objective"]["fp32"]},
        dnnl=f"oneDNN ran {', '.join(dnnl)}" if dnnl else "none of them reaches oneDNN",
        span_bf16=span("forward im2col bf16"),
        span_fp32=span("forward im2col fp32"),
        wino=statistics.median(wino),
        **layers,
        gradient=_table(
            ["comparison", "loss rel.", "gradient rel. L2", "max rel.", "cosine"], grads
        ),
        speed=_table(["layer", *CONFIGS, "bf16/fp32 NCHW", "bf16/fp32 channels_last"], speed),
        gflops={k: 2 * np.prod(GEMM) / v / 1e9 for k, v in sp["gemm"].items()},
        onednn="\n".join(f"- {k}: {'; '.join(v)}" for k, v in sp["onednn"].items() if k != "isa"),
    )
    return re.sub(r"(?<=\S)\n(?=[^\n|#-])", " ", text)  # one line per paragraph


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bf16", description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3, help="timed runs per torch conv and matmul")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--weights", default="cached", help="cached, auto, random or a weights file")
    p.add_argument("--images", type=Path, default=evaluation.default_images_dir())
    p.add_argument("--out", type=Path, default=PAGE, help="the page (its JSON beside it)")
    argv = sys.argv[1:] if argv is None else argv
    args, load_start = p.parse_args(argv), " / ".join(f"{v:.2f}" for v in os.getloadavg())
    environment.pin_threads(args.threads, torch_too=False)
    net, weights, _ = evaluation.load_network(args.weights)
    content, style = load(args.images)
    x0 = evaluation.start_point(content, 16.0, 0)
    inputs, grads, winograd32 = record(net, content, style, x0)
    rows = layer_table(net, inputs, grads)
    del inputs, grads
    gradient, objective_times = gradient_table(net, content, style, winograd32, x0)
    print(json.dumps(gradient, indent=1), flush=True)
    torch = environment.import_torch()
    torch.set_num_threads(args.threads)
    sample = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32) * 1e3
    assert np.array_equal(bf16(sample), torch.from_numpy(sample).bfloat16().float().numpy())
    convs, gemm = torch_speed(rows, args.repeats)
    isa = f"CPU capability {torch.backends.cpu.get_cpu_capability()}"
    isa += f", `torch.cpu._is_avx512_bf16_supported()` {torch.cpu._is_avx512_bf16_supported()}"
    isa += f", `mkldnn._is_mkldnn_bf16_supported()` {torch.ops.mkldnn._is_mkldnn_bf16_supported()}"
    conditions = {
        "command": shlex.join(["python", "-m", "bench.bf16", *argv]),
        "date": environment.now(),
        "cpu": f"{environment.cpu_model()}, {environment.usable_cores()} usable cores",
        "flags": cpuinfo(),
        "torch_isa": isa,
        "versions": ", ".join(f"{k} {v}" for k, v in environment.versions().items()),
        **{"threads": args.threads, "repeats": args.repeats, "load_start": load_start},
        "load_end": " / ".join(f"{v:.2f}" for v in os.getloadavg()),
        "content": f"{evaluation.CONTENT_IMAGE} {content.shape[1]}×{content.shape[0]}",
        "style": f"{evaluation.STYLE_IMAGE} {style.shape[1]}×{style.shape[0]}",
        "weights": weights,
        "bf16_emulation": "bit-identical to torch's float32→bfloat16 cast on 2^20 normal samples",
    }
    onednn = onednn_kernels(args.threads)
    speed = {"convs": convs, "gemm": gemm, "objective": objective_times, "onednn": onednn}
    data = {"conditions": conditions, "layers": rows, "gradient": gradient, "speed": speed}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(data, indent=1, ensure_ascii=False))
    save_page(args.out, render(data))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
