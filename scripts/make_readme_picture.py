"""Make the README's picture: tubingen + starry_night (from ../shared/images), gatys defaults.

    python scripts/make_readme_picture.py [--size 512] [--iters 500]

Writes docs/tubingen_starry_night.jpg (512 px JPEG) and docs/tubingen_starry_night.json (the run log,
with the time and iteration count quoted in the README).
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
    ap.add_argument("--iters", type=int, default=500)
    ap.add_argument("--out", default=str(ROOT / "docs" / "tubingen_starry_night.jpg"))
    args = ap.parse_args()
    out = Path(args.out)
    png = out.with_suffix(".png")
    log = stylize(
        str(SHARED / "tubingen.jpg"),
        [str(SHARED / "starry_night.jpg")],
        RunOptions(
            output=str(png), size=args.size, iters=args.iters, log=str(out.with_suffix(".json"))
        ),
        {},
    )
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
