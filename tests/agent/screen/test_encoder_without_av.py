"""The screen without PyAV, as the single-file agent ships it (docs/adr/0011-one-file-agent.md):
JPEG rectangles through Pillow, never a video codec, and the screen still offered on X11.

PyAV is installed in the test venv, so each case runs in a fresh interpreter where
``sys.modules["av"] = None`` makes ``import av`` fail exactly as a missing package does.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from auxilio.agent.screen.changes import Rect
from auxilio.agent.screen.encoder import JpegRectsEncoder, pillow_quality

from ..xserver import xvfb

Image = pytest.importorskip("PIL.Image", reason="Pillow (the screen extra) is not installed")

NO_AV = "import sys\nsys.modules['av'] = None\n"


def run_without_av(code: str, env: dict[str, str] | None = None) -> dict[str, object]:
    script = NO_AV + textwrap.dedent(code)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env=env, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_without_av_the_pipeline_sends_jpeg_rectangles_from_the_first_frame() -> None:
    found = run_without_av(
        """
        import io, json
        import numpy as np
        from PIL import Image
        from auxilio.agent.screen import encoder
        from auxilio.agent.screen.capture import Frame, Monitor

        class Source:
            def __init__(self):
                self.pixels = np.zeros((96, 160), dtype=np.uint32)
                self.pixels[:] = 0xFF2060A0  # BGRA in memory: B=A0 G=60 R=20
            def grab(self):
                return Frame(self.pixels.copy(), Monitor(0, 0, 0, 160, 96, True))

        source = Source()
        pipeline = encoder.ScreenPipeline(source, codec=encoder.VideoCodec.VP9)
        first = pipeline.step()
        source.pixels[0:64, 64:128] = 0xFFFFFFFF
        second = pipeline.step()
        try:
            encoder.VideoEncoder(160, 96)
            video_error = None
        except encoder.EncoderFailed as exc:
            video_error = [exc.code, exc.message]
        image = Image.open(io.BytesIO(first.jpeg.rects[0].data))
        print(json.dumps({
            "video_available": encoder.VIDEO_AVAILABLE,
            "codecs": list(encoder.encodable_codecs()),
            "mode": pipeline.mode,
            "reason": pipeline.fallback_reason,
            "first_video": first.video is not None,
            "first_keyframe": first.jpeg.keyframe,
            "first_format": image.format,
            "first_size": list(image.size),
            "first_pixel": list(image.convert("RGB").getpixel((80, 48))),
            "second_rects": [[r.x, r.y, r.w, r.h] for r in second.jpeg.rects],
            "second_keyframe": second.jpeg.keyframe,
            "backend": pipeline._jpeg.backend,
            "video_error": video_error,
        }))
        """
    )
    assert found["video_available"] is False
    assert found["codecs"] == ["jpeg"]
    assert found["mode"] == "jpeg"
    assert found["reason"] == "PyAV is not installed: this agent sends JPEG rectangles only"
    assert found["first_video"] is False
    assert found["first_keyframe"] is True
    assert found["first_format"] == "JPEG"
    assert found["first_size"] == [160, 96]
    red, green, blue = found["first_pixel"]  # type: ignore[misc]
    assert abs(red - 0x20) <= 6 and abs(green - 0x60) <= 6 and abs(blue - 0xA0) <= 6
    assert found["second_rects"] == [[64, 0, 64, 64]]
    assert found["second_keyframe"] is False
    assert found["backend"] == "pillow"
    assert found["video_error"] == [
        "screen.encoder_failed", "PyAV is not installed: this agent sends JPEG rectangles only"
    ]


def test_without_av_nor_pillow_there_is_no_screen_to_offer() -> None:
    found = run_without_av(
        """
        import json, sys
        sys.modules["PIL"] = None
        from auxilio.agent import capability_discovery
        from auxilio.agent.screen import encoder
        try:
            encoder.JpegRectsEncoder()
            error = None
        except encoder.EncoderFailed as exc:
            error = exc.code
        print(json.dumps({"codecs": list(capability_discovery.screen_codecs()),
                          "screen": list(capability_discovery.screen_capabilities(
                              {"DISPLAY": ":0"})),
                          "error": error}))
        """
    )
    assert found == {"codecs": [], "screen": [], "error": "screen.encoder_failed"}


def test_without_av_the_screen_is_still_offered_on_x11() -> None:
    with xvfb() as display:
        found = run_without_av(
            f"""
            import json
            from auxilio.agent import capability_discovery
            print(json.dumps({{
                "codecs": list(capability_discovery.screen_codecs()),
                "screen": [str(c) for c in
                           capability_discovery.screen_capabilities({{"DISPLAY": "{display}"}})],
            }}))
            """
        )
    assert found["codecs"] == ["jpeg"]
    assert "screen" in found["screen"]  # type: ignore[operator]


def _desktop(height: int = 64, width: int = 256) -> np.ndarray:
    rng = np.random.default_rng(7)
    bgra = np.full((height, width, 4), 235, dtype=np.uint8)
    bgra[8:20, 10:200, :3] = rng.integers(0, 80, (12, 190, 3), dtype=np.uint8)  # "text"
    bgra[30:60, 100:160, :3] = (40, 120, 200)
    return bgra.view(np.uint32).reshape(height, width)


@pytest.mark.parametrize("backend", ["pillow", "ffmpeg"])
def test_both_jpeg_backends_give_the_rectangle_back(backend: str) -> None:
    pixels = _desktop()
    jpeg = JpegRectsEncoder(quality=5, backend=backend)  # type: ignore[arg-type]
    frame = jpeg.encode(pixels, [Rect(96, 24, 64, 40)], 1000)
    (rect,) = frame.rects
    image = Image.open(io.BytesIO(rect.data)).convert("RGB")
    assert image.size == (64, 40)
    # The flat block (B=40 G=120 R=200) comes back within JPEG's error at its centre.
    red, green, blue = image.getpixel((32, 20))
    assert abs(red - 200) <= 8 and abs(green - 120) <= 8 and abs(blue - 40) <= 8
    assert not frame.keyframe


def test_the_quantiser_maps_onto_pillow_quality_in_order() -> None:
    qualities = [pillow_quality(q) for q in range(2, 32)]
    assert qualities == sorted(qualities, reverse=True)
    assert qualities[0] <= 95 and qualities[-1] >= 5
    assert pillow_quality(5) == 77


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown JPEG backend"):
        JpegRectsEncoder(backend="gif")  # type: ignore[arg-type]
