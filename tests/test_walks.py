"""Latent walks: the spherical interpolation's maths, the closed loop through the points, the frames a
generator makes along it, and the GIF (and MP4, through imageio's ffmpeg plugin) that holds them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from wgan import animation
from wgan.models import ModelShape, build_models
from wgan.walks import (
    PARALLEL_SINE, Walk, draw_walk_points, grid_frames, render_walk, slerp, walk_layout, walk_path, walk_rows)


def random_pairs(n: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(n, dim, generator=gen, dtype=torch.float64),
            torch.randn(n, dim, generator=gen, dtype=torch.float64))


def test_slerp_endpoints_are_the_points_exactly():
    a, b = random_pairs(5, 64)
    out = slerp(a, b, torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert torch.equal(out[0], a) and torch.equal(out[1], b)


def test_slerp_keeps_equal_norms_and_moves_at_constant_angular_speed(float64):
    a, b = random_pairs(6, 128, seed=1)
    b = b / b.norm(dim=-1, keepdim=True) * a.norm(dim=-1, keepdim=True)  # equal norms, random radii
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    out = slerp(a, b, t)  # (11, 6, 128)
    torch.testing.assert_close(out.norm(dim=-1), a.norm(dim=-1).expand(11, -1), rtol=1e-12, atol=0)
    # The angle from a grows linearly in t: t * omega, omega the angle between a and b.
    def angle(x, y):
        return torch.acos(((x * y).sum(-1) / (x.norm(dim=-1) * y.norm(dim=-1))).clamp(-1, 1))
    omega = angle(a, b)
    torch.testing.assert_close(angle(out, a.expand_as(out)), t[:, None] * omega, rtol=0, atol=1e-7)


def test_slerp_is_the_rotation_in_the_plane_of_the_two_points(float64):
    """A second code path: unit a rotated by t * omega towards the unit vector orthogonal to it in the plane
    of a and b (Gram-Schmidt), rather than the sine-weighted sum."""
    a, b = random_pairs(4, 32, seed=2)
    a, b = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    cos = (a * b).sum(-1, keepdim=True)
    omega = torch.acos(cos)
    u = b - cos * a
    u = u / u.norm(dim=-1, keepdim=True)
    t = torch.tensor([0.1, 0.25, 0.5, 0.9], dtype=torch.float64)[:, None, None]
    expected = torch.cos(t * omega) * a + torch.sin(t * omega) * u
    torch.testing.assert_close(slerp(a, b, t.flatten()), expected, rtol=1e-12, atol=1e-13)


def test_slerp_of_parallel_points_falls_back_to_the_straight_line(float64):
    a = torch.randn(3, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    b = 2.5 * a  # the same direction: the arc is undefined by the formula (0 / 0)
    t = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    out = slerp(a, b, t)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, (1 - t)[:, None, None] * a + t[:, None, None] * b, rtol=1e-12, atol=0)
    assert PARALLEL_SINE < 1e-3


def test_a_walk_passes_through_its_points_and_closes_the_loop(float64):
    points = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)  # 3 walks, 5 points
    frames = 6
    path = walk_path(points, frames)
    assert path.shape == (5 * frames, 3, 8)
    for k in range(5):
        assert torch.equal(path[k * frames], points[:, k]), "frame k * F is point k"
    # The frame after the last, one more step along the last segment, is the first point: the loop closes
    # with no jump and no repeated frame.
    t_last = torch.tensor([(frames - 1) / frames, 1.0], dtype=torch.float64)
    tail = slerp(points[:, -1], points[:, 0], t_last)
    torch.testing.assert_close(tail[0], path[-1], rtol=1e-12, atol=0)
    assert torch.equal(tail[1], path[0])
    # On a sphere (points of equal norm) every step, the closing one from the last frame back to the first
    # included, turns by its segment's angle / F: no jump anywhere along the loop.
    points = points / points.norm(dim=-1, keepdim=True)
    path = walk_path(points, frames)
    def angle(x, y):
        return torch.acos(((x * y).sum(-1) / (x.norm(dim=-1) * y.norm(dim=-1))).clamp(-1, 1))
    steps = angle(path, path.roll(-1, dims=0))  # (T, 3)
    segment_angles = angle(points, points.roll(-1, dims=1))  # (3, 5): point k to point k + 1, and 4 to 0
    torch.testing.assert_close(steps, segment_angles.T.repeat_interleave(frames, dim=0) / frames, rtol=0, atol=1e-7)


def test_walk_points_are_the_truncated_draws_of_the_seed():
    a = draw_walk_points(2, 3, 16, seed=5, truncation=0.5)
    assert a.shape == (2, 3, 16) and float(a.abs().max()) <= 0.5
    assert torch.equal(a, draw_walk_points(2, 3, 16, seed=5, truncation=0.5))
    assert not torch.equal(a, draw_walk_points(2, 3, 16, seed=6, truncation=0.5))


def test_the_layout_of_a_conditional_walk_is_one_row_per_walk_and_one_column_per_class():
    per_walk, labels, columns = walk_layout(num_classes=3, num_walks=2, label=None)
    assert (per_walk, columns) == (3, 3) and labels.tolist() == [0, 1, 2, 0, 1, 2]
    per_walk, labels, columns = walk_layout(num_classes=3, num_walks=4, label=2)
    assert (per_walk, columns) == (1, 2) and labels.tolist() == [2] * 4
    assert walk_layout(num_classes=0, num_walks=9, label=None) == (1, None, 3)


def tiny_generator(num_classes: int = 0) -> torch.nn.Module:
    torch.manual_seed(0)
    generator, _ = build_models("dcgan28", ModelShape(latent_dim=8, width=4, num_classes=num_classes))
    return generator


def test_rendered_walk_frames_are_the_generator_at_the_path(float64):
    generator = tiny_generator().double().train()
    walk = render_walk(generator, num_walks=3, num_points=2, frames_per_segment=4, seed=7)
    assert walk.frames.shape == (8, 3, 1, 28, 28) and walk.frames.dtype == torch.uint8 and walk.columns == 1
    assert generator.training, "its mode is restored"
    path = walk_path(draw_walk_points(3, 2, 8, seed=7).double(), 4)
    with torch.no_grad():
        direct = generator.eval()(path[5], None)
    expected = direct.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(walk.frames[5], expected)


def test_a_conditional_walk_shows_the_same_noise_in_every_class():
    generator = tiny_generator(num_classes=3)
    walk = render_walk(generator, num_walks=2, num_points=3, frames_per_segment=2, seed=0)
    assert walk.frames.shape == (6, 6, 1, 28, 28) and walk.columns == 3
    z = walk_path(draw_walk_points(2, 3, 8, seed=0), 2)[4]  # frame 4: (2 walks, 8)
    with torch.no_grad():
        row1 = generator.eval()(z[1:2].expand(3, -1), torch.arange(3))  # walk 1 in classes 0, 1, 2
    assert torch.equal(walk.frames[4, 3:6], row1.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8))
    assert not torch.equal(walk.frames[4, 3], walk.frames[4, 4]), "the class changes the image"


def test_grid_frames_and_the_gif_hold_every_frame(tmp_path):
    walk = render_walk(tiny_generator(), num_walks=4, num_points=3, frames_per_segment=2, seed=1)
    grids = grid_frames(walk)
    assert grids.shape == (6, 2 * 30 + 2, 2 * 30 + 2, 3) and grids.dtype == torch.uint8  # 2 x 2, 2-pixel gaps
    path = tmp_path / "walk.gif"
    animation.write_animation(path, grids.numpy(), frame_ms=50)
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.size == (62, 62) and gif.n_frames == 6
        gif.seek(3)
        frame = np.asarray(gif.convert("L"))
    assert np.array_equal(frame, grids[3, :, :, 0].numpy()), "grey frames are stored without loss"
    assert list(tmp_path.iterdir()) == [path], "no temporary file left beside it"


def test_colour_frames_make_a_colour_gif(tmp_path):
    frames = np.zeros((3, 10, 12, 3), dtype=np.uint8)
    for i in range(3):
        frames[i, :, :, i] = 200  # red, green, blue
    animation.write_gif(tmp_path / "c.gif", frames, frame_ms=40)
    with Image.open(tmp_path / "c.gif") as gif:
        assert gif.n_frames == 3
        gif.seek(1)
        assert tuple(gif.convert("RGB").getpixel((5, 5))) == (0, 200, 0)


def test_mp4_without_imageios_ffmpeg_plugin_is_refused_with_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(animation, "_mp4_plugin_missing", lambda: True)
    problem = animation.animation_problem(tmp_path / "walk.mp4")
    assert "pip install imageio[ffmpeg]" in problem and ".gif" in problem
    assert "gif or .mp4" in animation.animation_problem(tmp_path / "walk.avi")
    with pytest.raises(ValueError, match="imageio"):
        animation.write_animation(tmp_path / "walk.mp4", np.zeros((2, 4, 4, 3), np.uint8), 40)
    assert not list(tmp_path.iterdir())


def test_mp4_is_written_by_imageios_ffmpeg_plugin_with_even_sides(tmp_path):
    """imageio-ffmpeg is in the test extra: a real H.264 file, read back frame by frame."""
    import imageio.v2 as imageio

    frames = np.full((5, 31, 62, 3), 7, dtype=np.uint8)
    animation.write_animation(tmp_path / "walk.mp4", frames, frame_ms=40)
    assert [p.name for p in tmp_path.iterdir()] == ["walk.mp4"], "the temporary file is renamed over the target"
    with imageio.get_reader(tmp_path / "walk.mp4", format="FFMPEG") as reader:
        fps = reader.get_meta_data()["fps"]
        back = np.stack(list(reader.iter_data()))  # len(reader) is inf until read
    assert back.shape == (5, 32, 62, 3), "yuv420p needs even sides: one row added"
    assert fps == pytest.approx(25.0)
    # H.264 is lossy: the picture's grey and the added white row within a few levels
    assert np.abs(back[:, :31].astype(int) - 7).mean() < 4 and np.abs(back[:, 31].astype(int) - 255).mean() < 24


def test_walk_rows_counts_the_walks_by_the_classes_each_is_shown_in():
    walk = Walk(torch.zeros(2, 6, 1, 4, 4, dtype=torch.uint8), columns=3)
    assert walk_rows(walk, classes_per_walk=3) == "2 walks, each in every class"
    assert walk_rows(walk, classes_per_walk=0) == "6 walks"
    assert walk_rows(Walk(walk.frames[:, :1], columns=1), classes_per_walk=0) == "1 walk"
