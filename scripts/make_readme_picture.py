"""Make the README's pictures: tubingen + starry_night (from ../shared/images), gatys defaults.

    python scripts/make_readme_picture.py              # the default route (minivgg transfer, no flags)
    python scripts/make_readme_picture.py --reference  # the reference: one scale, 500 iterations

Writes docs/tubingen_starry_night.jpg (or docs/tubingen_starry_night_reference.jpg), a 512 px JPEG,
and the run log beside it (.json: the time and iterations quoted in the docs).
"""

import argparse
import io
import json
import sys
from pathlib import Path

from PIL import Image

from minivgg.run.transfer import RunOptions, stylize

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "images"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--reference", action="store_true", help="one scale, --all-iters --iters 500")
    args = ap.parse_args()
    name = "tubingen_starry_night" + ("_reference" if args.reference else "")
    out = ROOT / "docs" / f"{name}.jpg"
    png = out.with_suffix(".png")
    opts = RunOptions(output=str(png), size=args.size, log=str(out.with_suffix(".json")))
    if args.reference:
        opts.iters, opts.all_iters, opts.single_scale = 500, True, True
    log = stylize(str(SHARED / "tubingen.jpg"), [str(SHARED / "starry_night.jpg")], opts, {})
    buf = io.BytesIO()
    Image.open(png).convert("RGB").save(buf, "JPEG", quality=88)
    out.write_bytes(buf.getvalue())
    png.unlink()
    its = len(log["iterations"])
    print(
        f"{out}: {its} iterations, {log['seconds']:.0f} s, final loss {log['final_loss']:.4g}",
        file=sys.stderr,
    )
    data = json.loads(out.with_suffix(".json").read_text())
    data["settings"]["content"] = "../shared/images/tubingen.jpg"
    data["settings"]["styles"] = ["../shared/images/starry_night.jpg"]
    out.with_suffix(".json").write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
