"""``docs/backprop_to_input.ipynb`` executes from top to bottom (nbclient, a fresh kernel), so the
notebook never rots. Slow: it builds the real VGG16, reconstructs and runs a small transfer."""

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "backprop_to_input.ipynb"


@pytest.mark.slow
def test_notebook_executes(real_weights, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    images = Path(__file__).resolve().parents[2] / "shared" / "images"
    if not (images / "tubingen.jpg").is_file():
        pytest.skip("needs ../shared/images (the project's test images)")
    monkeypatch.setenv("MINIVGG_IMAGES", str(images))  # the kernel inherits it; the cwd is tmp_path
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "winograd" in text and "im2col" in text and "pass" in text
