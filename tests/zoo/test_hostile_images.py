"""A hostile-image corpus for `zoo predict RUN IMAGE`, written by the test (headers and tiny files
only): images that claim gigapixels are refused before any pixel is decoded, animated ones are read
by their first frame, and anything else that is not a picture is one clear paragraph."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageFile

import zoo
from zoo.cli import cli
from zoo.errors import ZooError
from zoo.inference import MAX_PIXELS, image_to_input

SHAPE = (1, 28, 28)


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header announcing width×height 8-bit gray pixels, followed by the start of its data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * min(width + 1, 1024))) + chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real 16×16 JPEG whose start-of-frame marker is patched to announce width×height."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16), 200, dtype=np.uint8)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def frames(count: int) -> list[Image.Image]:
    """Different pictures: frame k lights rows 2k..2k+3 (class k of the tests' synthetic digits)."""
    pictures = []
    for k in range(count):
        pixels = np.zeros((28, 28), dtype=np.uint8)
        pixels[2 * k + 2 : 2 * k + 6, 4:24] = 240
        pictures.append(Image.fromarray(pixels))
    return pictures


def animated(path: Path, fmt: str) -> Path:
    first, *rest = frames(4)
    first.save(path, fmt, save_all=True, append_images=rest, duration=100, loop=0, **({"lossless": True} if fmt == "WEBP" else {}))
    return path


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to decode pixels fails the test: a refusal must come from the header alone."""
    def decode(self: ImageFile.ImageFile) -> None:
        raise AssertionError(f"{self.format} image of {self.size} was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decode)


@pytest.mark.parametrize(("name", "content", "size"), [
    ("bomb.png", png_claiming(60_000, 60_000), "60000×60000"),
    ("wide.png", png_claiming(2**31 - 1, 1), "2147483647×1"),
    ("bomb.jpg", jpeg_claiming(65_500, 65_500), "65500×65500"),
    ("just-over.png", png_claiming(10_000, MAX_PIXELS // 10_000 + 1), f"10000×{MAX_PIXELS // 10_000 + 1}"),
])
def test_an_image_claiming_too_many_pixels_is_refused_before_decoding(name: str, content: bytes, size: str, tmp_path: Path, no_decoding: None) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert len(content) < 100_000
    with pytest.raises(ZooError, match=f"{path} is {size} pixels .*more than the limit of {MAX_PIXELS:,}.*--max-pixels"):
        image_to_input(path, SHAPE)


def test_the_limit_is_a_flag(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    frames(1)[0].resize((280, 280)).save(path)
    with pytest.raises(ZooError, match=r"280×280 pixels \(78,400\)"):
        image_to_input(path, SHAPE, max_pixels=78_399)
    assert image_to_input(path, SHAPE, max_pixels=78_400).shape == SHAPE


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_an_animated_image_is_read_by_its_first_frame(fmt: str, tmp_path: Path) -> None:
    path = animated(tmp_path / f"four.{fmt.lower()}", fmt)
    assert Image.open(path).n_frames == 4
    first = tmp_path / "first.png"
    frames(1)[0].save(first)
    image = image_to_input(path, SHAPE)
    assert image.shape == SHAPE
    assert np.allclose(image.numpy(), image_to_input(first, SHAPE).numpy(), atol=0.02)
    assert not np.allclose(image.numpy(), image_to_input(_frame(path, 1, tmp_path), SHAPE).numpy(), atol=0.02)


def _frame(path: Path, index: int, tmp_path: Path) -> Path:
    with Image.open(path) as image:
        image.seek(index)
        out = tmp_path / f"frame-{index}.png"
        image.convert("L").save(out)
    return out


def not_a_picture_cases(tmp_path: Path) -> dict[str, Path]:
    cases = {}
    good = io.BytesIO()
    frames(1)[0].save(good, "PNG")
    for name, content in {
        "truncated.png": good.getvalue()[:60],
        "header-only.png": png_claiming(100, 100)[:33],
        "tiff.tif": _encoded("TIFF"),
        "text.png": b"not a picture",
        "empty.png": b"",
    }.items():
        (tmp_path / name).write_bytes(content)
        cases[name] = tmp_path / name
    os.mkfifo(tmp_path / "fifo.png")
    cases["fifo.png"] = tmp_path / "fifo.png"
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    cases["zero.png"] = tmp_path / "zero.png"
    return cases


def _encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    frames(1)[0].save(buffer, fmt)
    return buffer.getvalue()


def test_what_is_not_a_picture_zoo_reads_is_one_accurate_message(tmp_path: Path) -> None:
    for name, path in not_a_picture_cases(tmp_path).items():
        with pytest.raises(ZooError) as raised:
            image_to_input(path, SHAPE)
        message = str(raised.value)
        assert str(path) in message, name
        if name in ("fifo.png", "zero.png"):
            assert "not a regular file" in message
        else:
            assert message == f"{path} is not an image zoo can read: give a PNG or JPEG file (GIF, WebP and BMP work too; of an animated GIF or WebP, the first frame is used)."


def test_a_picture_with_a_huge_text_chunk_is_named_for_what_it_is(tmp_path: Path) -> None:
    """A zTXt chunk past Pillow's safe limit (a possible zip bomb): refused, saying it is the metadata, not the picture."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "x" * 2**21, zip=True)  # 2 MiB of text, compressed to a few kB
    Image.new("L", (28, 28)).save(tmp_path / "commented.png", pnginfo=info)
    many = PngImagePlugin.PngInfo()
    for number in range(70):  # each under the one-chunk limit, 70 MB together (Pillow's other limit)
        many.add_text(f"comment{number}", "x" * 2**20, zip=True)
    Image.new("L", (28, 28)).save(tmp_path / "chatty.png", pnginfo=many)
    for name in ("commented.png", "chatty.png"):
        with pytest.raises(ZooError, match="carries more metadata .* than zoo reads safely: save the picture again without it"):
            image_to_input(tmp_path / name, SHAPE)


@pytest.fixture(scope="module")
def finished_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hostile") / "run"
    zoo.run(dataset="mnist", epochs=1, out=out, reporters=[], sets=[f"dataset.data_dir={json.dumps(str(tiny_data))}", "dataset.verify=false", "optimizer.lr=0.1"])
    return out


def test_predict_refuses_a_bomb_before_decoding(finished_run: Path, tmp_path: Path, no_decoding: None) -> None:
    bomb = tmp_path / "bomb.jpg"
    bomb.write_bytes(jpeg_claiming(65_500, 65_500))
    result = CliRunner().invoke(cli, ["predict", str(finished_run), str(bomb)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith(f"Error: {bomb} is 65500×65500 pixels") and result.output.count("\n") == 1
    raised = CliRunner().invoke(cli, ["predict", str(finished_run), str(bomb), "--max-pixels", str(65_500 * 65_500)])
    assert raised.exit_code == 1 and isinstance(raised.exception, AssertionError)  # past the limit: decoding was tried


def test_predict_on_an_animated_gif_is_predict_on_its_first_frame(finished_run: Path, tmp_path: Path) -> None:
    first = tmp_path / "first.png"
    frames(1)[0].save(first)
    expected = CliRunner().invoke(cli, ["predict", str(finished_run), str(first), "--top", "10"]).output.splitlines()
    gif = animated(tmp_path / "four.gif", "GIF")
    result = CliRunner().invoke(cli, ["predict", str(finished_run), str(gif), "--top", "10"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 11 and lines[0] == f"{gif}: {expected[0].split(': ', 1)[1]}"
    assert [line.split()[0] for line in lines[1:]] == [line.split()[0] for line in expected[1:]]  # same ranking


def test_a_16_bit_grey_picture_is_scaled_not_clipped(tmp_path: Path) -> None:
    """Pillow's convert("L") clips 16-bit grey at 255: a dark picture (1000 of 65535) came out white."""
    dark = np.full((28, 28), 1000, dtype=np.uint16)
    dark[10:18, 10:18] = 60000
    path = tmp_path / "dark16.png"
    Image.fromarray(dark).save(path)
    assert Image.open(path).mode.startswith("I")
    pixels = image_to_input(path, (1, 28, 28))
    assert float(pixels[0, 0, 0]) == pytest.approx(4 / 255, abs=1 / 255) and float(pixels[0, 14, 14]) == pytest.approx(233 / 255, abs=1 / 255)
