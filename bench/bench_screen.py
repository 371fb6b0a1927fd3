"""Screen view on the agent: grab, change detection and encoding at 1080p on Xvfb, same run.

An office-like scene drawn by a Tk program on a private Xvfb (1920x1080): a text window being
typed into, a long text scrolling, a window dragged across a page of text. The scene drives
itself with Tk timers (``after``), so that the same frames come in every run and no input tool
competes for the CPU. For each scene and encoder: slots served and frames delivered per second,
Mbit/s, this process's CPU per frame and cores used, and the X server's cores (XShm grabs cost
it some work), next to the raw grab rate and each encoder's raw rate on full frames.

Prints one JSON object. Run: ``.venv/bin/python bench/bench_screen.py [--seconds 10]``
(``--seconds 2`` for CI). Goals: >= 30 fps at 1080p, <= 3 Mbit/s office content, <= 1 core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.codec.context import CodecContext
from av.video.codeccontext import VideoCodecContext

from auxilio.agent.screen.capture import Pixels, ScreenSource
from auxilio.agent.screen.encoder import (
    PipelineOutput,
    ScreenPipeline,
    VideoCodec,
    VideoEncoder,
)

WIDTH, HEIGHT, FPS = 1920, 1080, 30
DECODERS = {VideoCodec.VP8: "vp8", VideoCodec.VP9: "vp9"}
GOAL_FPS, GOAL_MBIT_S, GOAL_CORES = 30, 3.0, 1.0

SCENE = r"""
import sys, tkinter as tk
mode = sys.argv[1]
words = ("the quick brown fox jumps over a lazy dog while support staff read the log of "
         "printer queue errors and the person types a reply about the spreadsheet").split()
def line(i):
    return " ".join(words[(i * 7 + k) % len(words)] for k in range(12 + i % 5))
root = tk.Tk()
root.geometry("1920x1080+0+0")
root.configure(background="#2d5a88")
page = tk.Text(root, font=("DejaVu Sans", 12), wrap="none", borderwidth=0)
page.place(x=80, y=60, width=1400, height=940)
if mode == "typing":
    page.insert("end", "\n".join(line(i) for i in range(20)) + "\n")
    text = "\n".join(line(i) for i in range(20, 400))
    state = {"i": 0}
    def type_one():
        page.insert("end", text[state["i"] % len(text)])
        page.see("end")
        state["i"] += 1
        root.after(60, type_one)  # about 16 characters a second, a fast typist
    root.after(60, type_one)
elif mode == "scrolling":
    page.insert("end", "\n".join(f"{i:5d}  {line(i)}" for i in range(5000)))
    def scroll():
        page.yview_scroll(1, "units")
        root.after(33, scroll)  # one line per frame: a steady scroll through a long log
    root.after(33, scroll)
elif mode == "dragging":
    page.insert("end", "\n".join(line(i) for i in range(60)))
    box = tk.Toplevel(root)
    box.overrideredirect(True)
    note = tk.Text(box, font=("DejaVu Sans", 12), background="#fff8dc", borderwidth=2)
    note.insert("end", "\n".join(line(i) for i in range(30)))
    note.pack(fill="both", expand=True)
    state = {"x": 100, "dx": 8}
    def drag():
        state["x"] += state["dx"]
        if not 100 <= state["x"] <= 1200:
            state["dx"] = -state["dx"]
        box.geometry(f"600x400+{state['x']}+{300 + state['x'] // 8}")
        root.after(33, drag)  # a window dragged at 240 px/s
    root.update()
    box.lift()  # no window manager: the main window was mapped last and would hide it
    root.after(33, drag)
print("ready", flush=True)
root.mainloop()
"""


@contextmanager
def xvfb() -> Iterator[tuple[str, int]]:
    read, write = os.pipe()
    command = ["Xvfb", "-displayfd", str(write), "-screen", "0", f"{WIDTH}x{HEIGHT}x24",
               "-nolisten", "tcp", "-noreset"]  # fmt: skip
    proc = subprocess.Popen(command, pass_fds=(write,), stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as answer:
        number = answer.readline().strip()
    try:
        yield f":{number}", proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def scene(display: str, mode: str) -> Iterator[None]:
    proc = subprocess.Popen([sys.executable, "-c", SCENE, mode], stdout=subprocess.PIPE,
                            env={**os.environ, "DISPLAY": display}, text=True)  # fmt: skip
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError(f"the {mode} scene did not start")
    time.sleep(0.5)  # the first paint
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU of another process (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class EncoderConfig:
    name: str
    codec: VideoCodec | None  # None: JPEG rectangles
    threads: int = 1
    speed: int = 8

    def factory(self) -> Callable[[int, int], VideoEncoder] | None:
        if self.codec is None:
            return None
        codec, threads, speed = self.codec, self.threads, self.speed
        return lambda w, h: VideoEncoder(w, h, codec=codec, threads=threads, speed=speed)


CONFIGS = [  # libvpx's cpu-used: VP8 -16..16, VP9 -8..8 in FFmpeg (higher is faster)
    EncoderConfig("vp8-t1-cpu8", VideoCodec.VP8),
    EncoderConfig("vp8-t1-cpu16", VideoCodec.VP8, speed=16),
    EncoderConfig("vp8-t2-cpu8", VideoCodec.VP8, threads=2),
    EncoderConfig("vp9-t1-cpu6", VideoCodec.VP9, speed=6),
    EncoderConfig("vp9-t1-cpu8", VideoCodec.VP9),
    EncoderConfig("vp9-t2-cpu8", VideoCodec.VP9, threads=2),
]
# Measured for the decision record only; the agent never opens these: x264 is GPL, and
# SVT-AV1's real-time mode left a freshly changed region out of the next frame (ADR 0008).
REFERENCES = {
    "x264-ultrafast-zerolatency-t1": ("libx264", {"preset": "ultrafast", "tune": "zerolatency"}),
    "svtav1-preset12-rtc-t1": ("libsvtav1", {"preset": "12", "svtav1-params": "rtc=1:rc=2:lp=1"}),
}
PIPELINE_CONFIGS = ["vp8-t1-cpu8", "vp9-t1-cpu8", "jpeg"]


def raw_grab(source: ScreenSource, seconds: float) -> dict[str, float]:
    count, start, cpu0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        source.grab()
        count += 1
    elapsed = time.perf_counter() - start
    return {
        "fps": round(count / elapsed, 1),
        "cpu_ms_per_grab": round((time.process_time() - cpu0) / count * 1000, 2),
    }


def record(source: ScreenSource, frames: int) -> list[Pixels]:
    """Consecutive grabs of a moving scene, ~30 fps apart, to feed the raw encoder runs."""
    out = []
    for _ in range(frames):
        out.append(source.grab().pixels)
        time.sleep(1 / FPS)
    return out


def raw_encoder(config: EncoderConfig, frames: list[Pixels], seconds: float) -> dict[str, float]:
    factory = config.factory()
    assert factory is not None
    encoder = factory(WIDTH, HEIGHT)
    count, size, start, cpu0 = 0, 0, time.perf_counter(), time.process_time()
    stream: list[bytes] = []
    while time.perf_counter() - start < seconds:
        out = encoder.encode(frames[count % len(frames)], count * 33_333, keyframe=count == 0)
        size += len(out.data) if out else 0
        if out:
            stream.append(out.data)
        count += 1
    elapsed = time.perf_counter() - start
    encode_cpu = time.process_time() - cpu0
    # FFmpeg's software decoder: a stand-in for the browser's on a machine without video
    # hardware (the console's own decode cost is measured in the browser, not here).
    decoder = CodecContext.create(DECODERS[config.codec or VideoCodec.VP8], "r")
    assert isinstance(decoder, VideoCodecContext)
    cpu0 = time.process_time()
    for data in stream:
        decoder.decode(av.Packet(data))
    return {
        "fps": round(count / elapsed, 1),
        "cpu_ms_per_frame": round(encode_cpu / count * 1000, 2),
        "mbit_s_at_30fps": round(size * 8 / count * FPS / 1e6, 2),
        "ffmpeg_decode_cpu_ms_per_frame": round(
            (time.process_time() - cpu0) / max(len(stream), 1) * 1000, 2
        ),
    }


def raw_reference(
    library: str, options: dict[str, str], frames: list[Pixels], seconds: float
) -> dict[str, float]:
    """The same measurement as ``raw_encoder`` with any FFmpeg encoder, opened directly."""
    context = CodecContext.create(library, "w")
    assert isinstance(context, VideoCodecContext)
    context.width, context.height, context.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    context.time_base, context.framerate = Fraction(1, 1_000_000), Fraction(FPS, 1)
    context.bit_rate, context.thread_count, context.options = 2_000_000, 1, options
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration otherwise
    context.open()
    count, size, start, cpu0 = 0, 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        bgra = frames[count % len(frames)].view(np.uint8).reshape(HEIGHT, WIDTH, 4)
        frame = av.VideoFrame.from_ndarray(bgra, format="bgra").reformat(format="yuv420p")
        frame.pts = count * 33_333
        size += sum(p.size for p in context.encode(frame))
        count += 1
    elapsed = time.perf_counter() - start
    context.encode(None)  # end of stream (SVT-AV1 complains on stderr otherwise)
    return {
        "fps": round(count / elapsed, 1),
        "cpu_ms_per_frame": round((time.process_time() - cpu0) / count * 1000, 2),
        "mbit_s_at_30fps": round(size * 8 / count * FPS / 1e6, 2),
    }


def pipeline_run(
    source: ScreenSource, config: str, seconds: float, x_pid: int, fps: int = FPS
) -> dict[str, object]:
    chosen = next((c for c in CONFIGS if c.name == config), None)
    pipeline = ScreenPipeline(
        source,
        codec=chosen.codec if chosen else None,
        fps=fps,
        encoder_factory=chosen.factory() if chosen else None,
    )
    encode_ms: list[float] = []

    def on_output(output: PipelineOutput) -> None:
        encode_ms.append(output.report.encode_ms)

    x0 = cpu_seconds_of(x_pid)
    stats = pipeline.run(seconds, on_output)
    x_cores = (cpu_seconds_of(x_pid) - x0) / stats.seconds
    encode_ms.sort()
    result: dict[str, object] = {
        "mode": pipeline.mode,
        "slots_per_s": round(stats.grabs / stats.seconds, 1),
        "frames_per_s": round(stats.frames / stats.seconds, 1),
        "unchanged_slots": stats.unchanged,
        "late_slots": stats.late,
        "keyframes": stats.keyframes,
        "mbit_s": round(stats.bytes * 8 / stats.seconds / 1e6, 3),
        # Where the CPU was too busy for 30 slots a second: the same bits per slot, at 30.
        "mbit_s_at_30_slots": round(stats.bytes * 8 / max(stats.grabs, 1) * FPS / 1e6, 3),
        "cpu_ms_per_frame": round(stats.cpu_seconds / max(stats.frames, 1) * 1000, 2),
        "cpu_ms_per_slot": round(stats.cpu_seconds / max(stats.grabs, 1) * 1000, 2),
        "cores": round(stats.cpu_seconds / stats.seconds, 3),
        "cores_at_30_slots": round(stats.cpu_seconds / max(stats.grabs, 1) * FPS, 3),
        "x_server_cores": round(x_cores, 3),
        "encode_ms_median": round(encode_ms[len(encode_ms) // 2], 2) if encode_ms else None,
    }
    pipeline.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="time per pipeline run")
    seconds = parser.parse_args().seconds
    short = max(1.0, seconds / 4)
    report: dict[str, object] = {
        "benchmark": "screen",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "screen": f"{WIDTH}x{HEIGHT}",
        "target_fps": FPS,
        "seconds_per_run": seconds,
        "scene_driver": "Tk after() timers (typing 16 chars/s, 1 line/frame scroll, 240 px/s drag)",
    }
    with xvfb() as (display, x_pid), ScreenSource(display) as source:
        with scene(display, "typing"):
            report["raw_grab"] = raw_grab(source, short)
        with scene(display, "dragging"):
            frames = record(source, 60)
        report["raw_encoder_full_frames"] = {c.name: raw_encoder(c, frames, short) for c in CONFIGS}
        report["raw_reference_encoders_not_used"] = {
            name: raw_reference(library, options, frames, short)
            for name, (library, options) in REFERENCES.items()
        }
        scenes: dict[str, dict[str, dict[str, object]]] = {}
        for mode in ("typing", "scrolling", "dragging"):
            with scene(display, mode):
                scenes[mode] = {
                    c: pipeline_run(source, c, seconds, x_pid) for c in PIPELINE_CONFIGS
                }
        report["pipeline"] = scenes
        with scene(display, "dragging"):
            # The ceiling: slots asked for faster than the pipeline can serve them.
            report["pipeline_ceiling_dragging"] = {
                c: pipeline_run(source, c, short, x_pid, fps=240)["slots_per_s"]
                for c in PIPELINE_CONFIGS
            }
    report["goals"] = goals(scenes)
    print(json.dumps(report))


def goals(scenes: dict[str, dict[str, dict[str, object]]]) -> dict[str, dict[str, bool]]:
    """Per pipeline configuration, over every scene: ``fps_30`` served >= 97% of 30 slots a
    second; ``mbit_s_3`` and ``one_core`` as measured. On a loaded machine the process gets less
    than a core and serves fewer slots; ``*_at_30_slots`` then says whether the cost per slot
    would meet the goal at 30 slots a second (CPU per slot <= 33 ms, bits per slot x 30)."""

    def value(run: dict[str, object], key: str) -> float:
        found = run[key]
        assert isinstance(found, int | float)
        return float(found)

    met: dict[str, dict[str, bool]] = {}
    for config in PIPELINE_CONFIGS:
        runs = [scenes[mode][config] for mode in scenes]
        met[config] = {
            "fps_30": all(value(r, "slots_per_s") >= GOAL_FPS * 0.97 for r in runs),
            "mbit_s_3": all(value(r, "mbit_s") <= GOAL_MBIT_S for r in runs),
            "one_core": all(value(r, "cores") <= GOAL_CORES for r in runs),
            "mbit_s_3_at_30_slots": all(
                value(r, "mbit_s_at_30_slots") <= GOAL_MBIT_S for r in runs
            ),
            "one_core_at_30_slots": all(value(r, "cores_at_30_slots") <= GOAL_CORES for r in runs),
        }
    return met


if __name__ == "__main__":
    main()
