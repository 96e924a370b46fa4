"""Video fusion: I/O, pairing in time, steady scaling, the temporal stability metric, safety paths.

Test videos are built at test time from the LLVIP frames 010001-010030 (downscaled to 160x128);
tests needing them skip when ../shared is absent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image

import emma_fusion
from emma_fusion.cli import main
from emma_fusion.errors import EmmaError, Interrupted
from emma_fusion.io import write_image
from emma_fusion.metrics.temporal import frame_change, temporal_stability
from emma_fusion.video import RangeSmoother, fuse_video, fuse_video_files, parse_offset, write_video
from emma_fusion.video.io import Frame, VideoSource
from emma_fusion.video.pairing import PairingReport, pair_by_time

from conftest import ROOT, shared_path

av = pytest.importorskip("av")
SIZE = (160, 128)


def llvip(kind: str, n: int, size=SIZE) -> list[np.ndarray]:
    folder = shared_path("data", "LLVIP", "train", kind)
    files = [folder / f"0100{i:02d}.jpg" for i in range(1, n + 1)]
    return [np.asarray(Image.open(f).convert("RGB").resize(size, Image.BICUBIC), dtype=np.float32) / 255 for f in files]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """25 fps videos of each modality: 8 frames in H.264, 3 (96x80) in lossless FFV1, and the timestamp pairing pair."""
    d = tmp_path_factory.mktemp("videos")
    ir, vi = llvip("ir", 9), llvip("vi", 9)
    paths = {}
    for kind, frames in (("ir", ir), ("vi", vi)):
        paths[kind] = d / f"{kind}.mp4"
        write_video(paths[kind], frames[:8], Fraction(25))
        paths[f"{kind}_ll"] = d / f"{kind}.mkv"  # small: the network runs on it
        write_video(paths[f"{kind}_ll"], llvip(kind, 3, (96, 80)), Fraction(25), lossless=True)
    paths["vi9"] = d / "vi9.mkv"
    write_video(paths["vi9"], vi, Fraction(25), lossless=True)
    paths["ir_third"] = d / "ir_third.mkv"  # frames 0, 3, 6 at 25/3 fps: the same instants as vi9's
    write_video(paths["ir_third"], ir[0:9:3], Fraction(25, 3), lossless=True)
    return paths


def decode(path) -> tuple[list[np.ndarray], av.video.stream.VideoStream]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
        return frames, (s.average_rate, s.codec_context.width, s.codec_context.height)


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(map(str, args)))
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_video_keeps_frame_count_size_and_rate(videos, tmp_path, capsys):
    out = tmp_path / "f.mp4"
    code, stdout, err = run(capsys, "fuse", videos["ir"], videos["vi"], "-o", out, "-m", "average")
    assert code in (0, None), err
    frames, (rate, w, h) = decode(out)
    assert (len(frames), rate, (w, h)) == (8, 25, SIZE)
    assert "8 frame(s) fused; paired by index" in err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_video_equals_fusing_its_frames_one_by_one(videos, tmp_path):
    """Lossless in and out, batches of 3: each frame as emma_fusion.fuse gives it (8-bit rounding); H.264 within codec loss."""
    out = tmp_path / "f.mkv"
    fuse_video_files(videos["ir_ll"], videos["vi_ll"], out, lossless=True, normalize="minmax", batch=3, streams=2)
    got, _ = decode(out)
    ir, _ = decode(videos["ir_ll"])
    vi, _ = decode(videos["vi_ll"])
    assert len(got) == 3
    for g, a, b in zip(got, ir, vi):
        ref = np.round(emma_fusion.fuse(a, b, normalize="minmax") * 255)  # colour from the visible frames
        assert np.abs(g.astype(np.float64) - ref).max() <= 1
    h264 = tmp_path / "f.mp4"  # H.264 output: within codec loss
    fuse_video_files(videos["ir_ll"], videos["vi_ll"], h264, normalize="minmax", batch=4)
    lossy, _ = decode(h264)
    write_video(tmp_path / "ref.mp4", [g / 255 for g in got], Fraction(25))  # the same frames through the same codec
    ref, _ = decode(tmp_path / "ref.mp4")
    assert len(lossy) == 3 and max(np.abs(a.astype(int) - b).mean() for a, b in zip(lossy, ref)) < 0.5


def test_pairing_by_timestamp_with_unequal_rates(videos):
    fusion = fuse_video(videos["ir_third"], videos["vi9"], method="average", batch=3)
    frames = list(fusion)
    assert fusion.fps == 25
    assert [f.ir_index for f in frames] == [0, 0, 1, 1, 1, 2, 2, 2]  # nearest in time
    assert [f.vi_index for f in frames] == list(range(8))
    rep = fusion.report.pairing
    assert (rep.mode, rep.repeated, rep.dropped) == ("timestamp", {"ir": 5, "vi": 0}, {"ir": 0, "vi": 1})


def _frames(n: int, fps: float) -> list[Frame]:
    return [Frame(i, i / fps, np.zeros((2, 2))) for i in range(n)]


def test_pair_by_time_offset_drops_the_ends():
    rep = PairingReport()
    pairs = list(pair_by_time(_frames(10, 25), _frames(10, 25), Fraction(25), Fraction(25), parse_offset("2f", 25), rep))
    assert [(a.index, b.index) for a, b in pairs] == [(i, i + 2) for i in range(8)]
    assert rep.dropped == {"ir": 2, "vi": 2} and rep.repeated == {"ir": 0, "vi": 0}
    rep = PairingReport()  # the infrared stream starts first: its first frames go
    pairs = list(pair_by_time(_frames(10, 50), _frames(5, 25), Fraction(50), Fraction(25), -0.08, rep))
    assert [(a.index, b.index) for a, b in pairs][:2] == [(3, 0), (4, 0)]
    assert rep.dropped["ir"] == 3


def test_parse_offset():
    assert parse_offset("0.5", 25) == 0.5 and parse_offset("-1s", 25) == -1 and parse_offset("12f", 24) == 0.5
    assert parse_offset(None, 25) == 0
    with pytest.raises(EmmaError, match="--offset"):
        parse_offset("12 frames", 25)


def test_frame_folders_to_video(tmp_path, capsys):
    ir, vi = llvip("ir", 5), llvip("vi", 5)
    for i, (a, b) in enumerate(zip(ir, vi)):
        write_image(tmp_path / "ir" / f"{i:04d}.png", a)
        write_image(tmp_path / "vi" / f"{i:04d}.png", b)
    write_image(tmp_path / "vi" / "9999.png", vi[0])  # no partner: reported as dropped
    out = tmp_path / "f.mp4"
    code, _, err = run(capsys, "fuse", "--ir", tmp_path / "ir", "--vi", tmp_path / "vi", "-o", out, "--fps", 10,
                       "-m", "average")
    assert code in (0, None), err
    frames, (rate, w, h) = decode(out)
    assert (len(frames), rate, (w, h)) == (5, 10, SIZE)
    assert "visible: 1 dropped" in err
    code, _, err = run(capsys, "fuse", "--ir", tmp_path / "ir", "--vi", tmp_path / "vi", "-o", tmp_path / "g.mp4")
    assert code == 2 and err.strip() == "error: frame folders need their frame rate: give --fps"


def test_video_to_frame_folder_and_user_frames(videos, tmp_path):
    rep = fuse_video_files(videos["ir"], videos["vi"], tmp_path / "frames", method="average")
    assert rep.frames == 8 and sorted(os.listdir(tmp_path / "frames"))[0] == "000000.png"
    fused = list(fuse_video(llvip("ir", 3), (np.uint8(v * 255) for v in llvip("vi", 3)), method="average"))
    assert [f.index for f in fused] == [0, 1, 2] and fused[0].image.shape == (SIZE[1], SIZE[0], 3)


class _InterruptAt:
    """A method that presses Ctrl-C on its ``n``-th call."""

    name = "interrupting"

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def __call__(self, ir, vi, key=None):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return (ir + vi) / 2


def test_interrupt_leaves_no_file(videos, tmp_path):
    out = tmp_path / "f.mp4"
    with pytest.raises(Interrupted, match=r"frame\(s\) fused; .*f.mp4 not written"):
        fuse_video_files(videos["ir"], videos["vi"], out, model=_InterruptAt(2), batch=2)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(Interrupted, match=r"^2 frame\(s\) written to"):
        fuse_video_files(videos["ir"], videos["vi"], tmp_path / "frames", model=_InterruptAt(2), batch=2)


class _TermAt(_InterruptAt):
    """Sends this process SIGTERM (``kill PID``) on the n-th batch instead of raising."""

    def __call__(self, ir, vi, key=None):
        self.calls += 1
        if self.calls == self.n:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)  # let the main thread take the signal
        return (ir + vi) / 2


def test_sigterm_stops_like_ctrl_c_and_leaves_no_file(videos, tmp_path):
    out = tmp_path / "f.mp4"
    with pytest.raises(Interrupted, match=r"frame\(s\) fused; .*f.mp4 not written"):
        fuse_video_files(videos["ir"], videos["vi"], out, model=_TermAt(2), batch=2)
    assert list(tmp_path.iterdir()) == []  # no hidden temporary file either
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is put back


def test_bad_inputs_one_error_line(videos, tmp_path, capsys):
    data = videos["vi_ll"].read_bytes()
    trunc = tmp_path / "trunc.mkv"
    trunc.write_bytes(data[: len(data) // 2])
    code, _, err = run(capsys, "fuse", videos["ir_ll"], trunc, "-o", tmp_path / "f.mp4", "-m", "average")
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and "truncated" in err
    assert not (tmp_path / "f.mp4").exists()
    code, _, err = run(capsys, "fuse", videos["ir_ll"], trunc, "-o", tmp_path / "f.mp4", "-m", "average",
                       "--skip-bad-frames")
    assert code in (0, None) and "bad frames skipped: infrared 0, visible" in err
    cut = tmp_path / "cut.mp4"  # an mp4 cut short has no index: cannot be opened
    cut.write_bytes(videos["vi"].read_bytes()[:2000])
    code, _, err = run(capsys, "fuse", videos["ir"], cut, "-o", tmp_path / "g.mp4", "-m", "average")
    assert code == 2 and err.startswith("error: cannot read video") and err.count("\n") == 1
    code, _, err = run(capsys, "fuse", videos["ir"], videos["vi"], "-o", tmp_path / "f.png", "-m", "average")
    assert code == 2 and "a video file" in err and not (tmp_path / "f.png").exists()
    before = videos["ir"].read_bytes()
    code, _, err = run(capsys, "fuse", videos["ir"], videos["vi"], "-o", videos["ir"], "-m", "average")
    assert code == 2 and "is the input file" in err and videos["ir"].read_bytes() == before


@pytest.mark.slow
def test_ctrl_c_on_the_cli(tmp_path):
    """A real SIGINT while fusing: one line with the count, exit 130, no file under the output name."""
    ir, vi = llvip("ir", 30, (640, 512)), llvip("vi", 30, (640, 512))
    write_video(tmp_path / "ir.mp4", ir * 4, Fraction(25))
    write_video(tmp_path / "vi.mp4", vi * 4, Fraction(25))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    p = subprocess.Popen([sys.executable, "-m", "emma_fusion", "fuse", "ir.mp4", "vi.mp4", "-o", "f.mp4"],
                         cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(12)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130
    lines = [ln for ln in err.splitlines() if ln.startswith("interrupted")]
    assert len(lines) == 1 and "not written" in lines[0], err
    assert sorted(os.listdir(tmp_path)) == ["ir.mp4", "vi.mp4"]


def test_temporal_stability_static_and_moving():
    from scipy.ndimage import gaussian_filter

    noise = gaussian_filter(np.random.default_rng(0).random((64, 80)), 4)
    scene = np.round((noise - noise.min()) / np.ptp(noise) * 200 + 20)  # smooth texture, like a real scene
    static = [scene] * 5
    assert temporal_stability(static, static, static) == 0.0
    moving = [np.roll(scene, 2 * t, axis=1) for t in range(6)]  # a pan: both sources move
    other = [np.roll(scene[::-1], 2 * t, axis=1) for t in range(6)]
    mean = [(a + b) / 2 for a, b in zip(moving, other)]
    assert 0.3 < temporal_stability(mean, moving, other) <= 1.0
    flicker = [np.clip(f + (30 if t % 2 else 0), 0, 255) for t, f in enumerate(mean)]
    assert temporal_stability(flicker, moving, other) > temporal_stability(mean, moving, other) + 0.1
    assert frame_change(static) == 0 and np.isnan(temporal_stability(static[:1], static[:1], static[:1]))


def test_smoothed_range_is_steadier_than_minmax():
    """A hot object entering raises the maximum: minmax dims the whole frame at once, smooth gradually."""
    base = np.linspace(0.2, 0.6, 64 * 64, dtype=np.float32).reshape(64, 64)
    seq = [base.copy() for _ in range(20)]
    for t in range(10, 20):
        seq[t][:8, :8] = 1.0
    def jumps(scale):
        means = [scale(f)[8:, 8:].mean() for f in seq]  # the part of the view that does not change
        return np.abs(np.diff(means)).max()
    from emma_fusion.core import normalize_output
    assert jumps(RangeSmoother(25, 1.0)) < 0.2 * jumps(lambda f: normalize_output(f, "minmax"))
    assert jumps(lambda f: normalize_output(f, "clip")) == 0


def test_metrics_sequence_reports_ts(tmp_path, capsys):
    ir, vi = llvip("ir", 4), llvip("vi", 4)
    for i, (a, b) in enumerate(zip(ir, vi)):
        write_image(tmp_path / "ir" / f"{i}.png", a)
        write_image(tmp_path / "vi" / f"{i}.png", b)
        write_image(tmp_path / "f" / f"{i}.png", (a + b) / 2)
    code, out, err = run(capsys, "metrics", "--ir", tmp_path / "ir", "--vi", tmp_path / "vi", "--fused",
                         tmp_path / "f", "-m", "EN", "--sequence", "-j", 1, "--no-progress")
    assert code in (0, None), err
    ts = float(out.strip().splitlines()[-1].rsplit(" ", 1)[1])
    assert 0 < ts <= 1.0


def test_video_source_reads_16_bit_gray(tmp_path):
    path = tmp_path / "g16.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=10)
        s.width, s.height, s.pix_fmt = 32, 24, "gray16le"
        for v in (1000, 60000):
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.full((24, 32), v, np.uint16), format="gray16le")))
        c.mux(s.encode())
    frames = list(VideoSource(path))
    assert [f.image.dtype for f in frames] == [np.uint16] * 2 and frames[1].image[0, 0] == 60000
    assert torch.get_num_threads() >= 1


def test_bench_sequence_reports_ts(tmp_path, capsys):
    for i, (a, b) in enumerate(zip(llvip("ir", 4), llvip("vi", 4))):
        write_image(tmp_path / "seq" / "ir" / f"{i}.png", a)
        write_image(tmp_path / "seq" / "vi" / f"{i}.png", b)
    code, out, err = run(capsys, "bench", "-d", tmp_path / "seq", "-o", tmp_path / "out", "-m", "average",
                         "--metrics", "EN", "--no-html", "--jobs", 1, "--no-isolate", "--no-progress", "--sequence")
    assert code in (0, None), err
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("seq average:"))
    assert 0 < float(line.rsplit(" ", 1)[1]) <= 1.0
