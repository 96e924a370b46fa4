"""The Eq. 6 landscape: EMMA's loss and each of its terms for fixed fusions and A pairs (docs/EQ6.md).

    python scripts/eq6_landscape.py --data ../shared/data --crops 24 --seed 3 \\
        --model drifted=runs/eq6drift/ufuser.safetensors

Forward passes only (plus one backward through the warm start for the gradient cosines). On
``--crops`` fixed 128 px crops of *training* pairs (MSRS/train, RoadScene/train, LLVIP/train,
equally many from each; the project's crop stream with its low-contrast filter, ``--seed``), for
each fusion ``F`` and each pair of pseudo-sensing maps ``(A_i, A_v)`` it prints::

    L(A_i f, i) | L(A_v f, v) | Eq. 6 = L(A_i f, i) + a1 L(A_v f, v) + a2 mean_T L(T f, F(A_i T f, A_v T f))

with ``f = F(i, v)``, ``L = l1 + l1 of the normalised Sobel gradient`` (:func:`sobel_l1`), a1 = 1,
a2 = 0.1 and ``T`` the authors' whole transform stack (identity, 3 shifts, 3 rotations, 3 flips;
fixed draw). Besides ``L(f, i) + L(f, v)`` (the paper's Exp. II/III baseline, which A = id
turns the sensing terms into) and, as a quality reference outside every loss, VIF of f against
each source (gain capped at 1, so a copy of a source scores 1 against it and 0.1-0.3 against the
other; f min-max scaled per crop as a saved fusion is): a fusion that keeps both sources scores
well on both.

Fusions ``F``: ``emma-default`` (the warm start), each ``--model NAME=WEIGHTS``, and the fixed rules
``(i+v)/2``, ``max(i,v)``, ``v`` and ``i`` (applied to ``A_i T f, A_v T f`` in the equivariant
term as to ``i, v``). A pairs: the packaged ``emma-sensing`` (plus each ``--sensing NAME=DIR``, a
stage-1 run folder with ``A_ir.safetensors`` and ``A_vi.safetensors``), the identity map, and an
oracle-like A: a guided filter of f steered by the true source (``--oracle-radius``, ``--oracle-eps``),
which returns the source's local mean plus whatever of its local variation is an affine function
of f in each window; its error is the source structure f has lost. In the equivariant term it is
steered by ``T i`` and ``T v``.

Then the cosine, at the warm start, between the gradient of the sensing terms
``L(A_i f, i) + L(A_v f, v)`` and that of ``L(f, i) + L(f, v)``: with respect to the fused image f
and to the U-Fuser's parameters (what training moves). A = id gives 1 by construction.

Last, a verdict per A pair (:func:`verdicts`): which fusion Eq. 6 ranks first and where the warm
start ranks. Only an A pair under which the warm start ranks first can make stage 2 improve it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from emma_fusion.train.data import DatasetSpec, PairedCrops
from emma_fusion.train.losses import sobel_l1
from emma_fusion.train.metric_losses import vif_score
from emma_fusion.train.transforms import TransformSampler
from emma_fusion.weights import load_model

SETS = ("MSRS/train", "RoadScene/train", "LLVIP/train")
A1, A2 = 1.0, 0.1

#: A sensing map: (f, the true source under the same transform) -> estimate of that source.
Sense = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: A fusion map: (ir, vi) -> f.
Fuse = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def load_crops(data: Path, n: int, seed: int, crop: int = 128, sets=SETS) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` fixed crops (ir, vi), each (n, 1, crop, crop): round-robin over ``sets``, stream ``seed``."""
    streams = [PairedCrops([DatasetSpec(root=str(data / s))], crop, seed=seed) for s in sets]
    items = [streams[k % len(streams)].sample(k // len(streams)) for k in range(n)]
    return torch.stack([it["ir"] for it in items]), torch.stack([it["vi"] for it in items])


def _box(x: torch.Tensor, r: int) -> torch.Tensor:
    return F.avg_pool2d(F.pad(x, (r, r, r, r), mode="reflect"), 2 * r + 1, stride=1)


def oracle(radius: int = 3, eps: float = 1e-4) -> Sense:
    """Guided filter of ``f`` steered by the true source: ``mean(a) f + mean(b)`` per window (He et al.)."""

    def sense(f: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        mf, mt = _box(f, radius), _box(target, radius)
        a = (_box(f * target, radius) - mf * mt) / (_box(f * f, radius) - mf * mf + eps)
        return _box(a, radius) * f + _box(mt - a * mf, radius)

    return sense


def _net(model: torch.nn.Module) -> Sense:
    model.eval().requires_grad_(False)
    return lambda f, target: model(f)


def sensing_pairs(extra: list[str], radius: int, eps: float, device: str = "cpu") -> dict[str, tuple[Sense, Sense]]:
    pairs = {"emma-sensing": (_net(load_model("emma-sensing-ir", arch="sensing-unet").to(device)),
                              _net(load_model("emma-sensing-vi", arch="sensing-unet").to(device)))}
    for item in extra:
        name, _, folder = item.partition("=")
        pairs[name] = tuple(_net(load_model(Path(folder) / f, arch="sensing-unet").to(device))
                            for f in ("A_ir.safetensors", "A_vi.safetensors"))
    pairs["identity"] = (lambda f, t: f, lambda f, t: f)
    pairs[f"oracle (guided, r {radius})"] = (oracle(radius, eps), oracle(radius, eps))
    return pairs


def fusions(extra: list[str], device: str = "cpu") -> dict[str, tuple[Fuse, torch.nn.Module | None]]:
    """Name -> (fusion map, its U-Fuser or None)."""
    out: dict[str, tuple[Fuse, torch.nn.Module | None]] = {}
    for item in ["warm start (emma-default)=emma-default", *extra]:
        name, _, weights = item.partition("=")
        net = load_model(weights or name, arch="ufuser").to(device).requires_grad_(False)
        out[name] = (net, net)
    out["(i+v)/2"] = (lambda a, b: 0.5 * (a + b), None)
    out["max(i,v)"] = (torch.maximum, None)
    out["v"] = (lambda a, b: b, None)
    out["i"] = (lambda a, b: a, None)
    return out


def transform_stack(size: int, seed: int):
    return TransformSampler().full_stack(size, size, torch.Generator().manual_seed(seed))


@torch.no_grad()
def terms(fuse: Fuse, a_i: Sense, a_v: Sense, ir, vi, stack, chunk: int = 8) -> dict[str, float]:
    """Eq. 6's terms for one fusion map and one A pair (means over the crops)."""
    f = torch.cat([fuse(ir[k:k + chunk], vi[k:k + chunk]) for k in range(0, len(ir), chunk)])
    s_ir, s_vi = sobel_l1(a_i(f, ir), ir), sobel_l1(a_v(f, vi), vi)
    eq = []
    for t in stack:  # equal-sized crops: the mean of per-transform L equals the whole stack's L
        ft, it, vt = t(f), t(ir), t(vi)
        refused = torch.cat([fuse(a_i(ft[k:k + chunk], it[k:k + chunk]), a_v(ft[k:k + chunk], vt[k:k + chunk]))
                             for k in range(0, len(ft), chunk)])
        eq.append(float(sobel_l1(ft, refused)))
    equi = float(np.mean(eq))
    return {"sense_ir": float(s_ir), "sense_vi": float(s_vi), "equivariant": equi,
            "eq6": float(s_ir) + A1 * float(s_vi) + A2 * equi, "plain": float(sobel_l1(f, ir) + sobel_l1(f, vi)),
            "_f": f}


def quality(f: torch.Tensor, ir: torch.Tensor, vi: torch.Tensor) -> tuple[float, float]:
    """Mean VIF of f against i and against v, gain capped at 1 (a copy of a source scores 1 against it,
    contrast stretching earns nothing), each crop of f min-max scaled as a saved fusion is."""
    lo = f.amin(dim=(1, 2, 3), keepdim=True)
    x = (f - lo) / (f.amax(dim=(1, 2, 3), keepdim=True) - lo).clamp_min(1e-12)
    return float(vif_score(ir, x, 1.0).mean()), float(vif_score(vi, x, 1.0).mean())


def _cos(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    x, y = (torch.cat([g.flatten().double() for g in gs]) for gs in (a, b))
    return float(F.cosine_similarity(x, y, dim=0))


def gradient_cosines(net: torch.nn.Module, a_i: Sense, a_v: Sense, ir, vi) -> tuple[float, float]:
    """cos(grad sensing terms, grad (L(f,i) + L(f,v))) w.r.t. f and w.r.t. the U-Fuser's parameters."""
    params = [p for p in net.parameters()]
    for p in params:
        p.requires_grad_(True)
    try:
        f = net(ir, vi)
        sensing = sobel_l1(a_i(f, ir), ir) + A1 * sobel_l1(a_v(f, vi), vi)
        plain = sobel_l1(f, ir) + A1 * sobel_l1(f, vi)
        g_s = torch.autograd.grad(sensing, [f, *params], retain_graph=True)
        g_p = torch.autograd.grad(plain, [f, *params])
    finally:
        for p in params:
            p.requires_grad_(False)
    return _cos([g_s[0]], [g_p[0]]), _cos(list(g_s[1:]), list(g_p[1:]))


def landscape(args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    torch.manual_seed(args.seed)
    ir, vi = (x.to(args.device) for x in load_crops(Path(args.data), args.crops, args.seed, args.crop))
    stack = transform_stack(args.crop, args.seed)[: args.transforms]
    pairs = sensing_pairs(args.sensing, args.oracle_radius, args.oracle_eps, args.device)
    fuse_maps = fusions(args.model, args.device)
    rows, q = [], {}
    for a_name, (a_i, a_v) in pairs.items():
        for f_name, (fuse, _) in fuse_maps.items():
            r = terms(fuse, a_i, a_v, ir, vi, stack)
            f = r.pop("_f")
            if f_name not in q:
                q[f_name] = quality(f, ir, vi)
            rows.append({"A": a_name, "f": f_name, **r, "vif_i": q[f_name][0], "vif_v": q[f_name][1]})
    warm = next(iter(fuse_maps.values()))[1]
    cos = [{"A": a_name, **dict(zip(("image", "params"), gradient_cosines(warm, a_i, a_v, ir, vi)))}
           for a_name, (a_i, a_v) in pairs.items()]
    return rows, cos


def markdown(rows: list[dict], cos: list[dict]) -> str:
    lines = ["| A | f | L(A_i f, i) | L(A_v f, v) | equivariant L | Eq. 6 | L(f,i) + L(f,v) | VIF(i, f) | VIF(v, f) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for a in dict.fromkeys(r["A"] for r in rows):
        group = [r for r in rows if r["A"] == a]
        best = min(r["eq6"] for r in group)
        for r in group:
            eq6 = f"**{r['eq6']:.4f}**" if r["eq6"] == best else f"{r['eq6']:.4f}"
            lines.append(f"| {a} | {r['f']} | {r['sense_ir']:.4f} | {r['sense_vi']:.4f} | {r['equivariant']:.4f} "
                         f"| {eq6} | {r['plain']:.4f} | {r['vif_i']:.3f} | {r['vif_v']:.3f} |")
    lines += ["", "| A | cos(grad sensing, grad plain) w.r.t. f | w.r.t. U-Fuser parameters |", "|---|---:|---:|"]
    lines += [f"| {c['A']} | {c['image']:.3f} | {c['params']:.3f} |" for c in cos]
    lines += [""] + verdict_lines(rows)
    return "\n".join(lines)


def verdicts(rows: list[dict]) -> list[dict]:
    """For each A pair: the fusion Eq. 6 ranks first and where the warm start ranks.

    This is the check to run before stage 2 (docs/EQ6.md): Eq. 6's descent can only improve the
    warm start if, with these A nets, the warm start beats the sources and their pixel-wise rules.
    The stage-1 gate (held-out MSE against the identity map) does not tell this.
    """
    out = []
    for a in dict.fromkeys(r["A"] for r in rows):
        group = sorted((r for r in rows if r["A"] == a), key=lambda r: r["eq6"])
        names = [r["f"] for r in group]
        warm = next(n for n in names if n.startswith("warm start"))
        out.append({"A": a, "prefers": names[0], "warm_rank": names.index(warm) + 1, "of": len(names),
                    "passed": names[0] == warm})
    return out


def verdict_lines(rows: list[dict]) -> list[str]:
    return [f"{v['A']}: Eq. 6 prefers {v['prefers']}; the warm start ranks {v['warm_rank']} of {v['of']} -> "
            + ("stage 2 may improve it" if v["passed"] else "stage 2 moves away from it")
            for v in verdicts(rows)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data", help="root holding MSRS/train, RoadScene/train, LLVIP/train")
    p.add_argument("--crops", type=int, default=24)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--transforms", type=int, default=10, help="first N of the transform stack (10: all)")
    p.add_argument("--model", action="append", default=[], help="NAME=WEIGHTS: another U-Fuser (repeatable)")
    p.add_argument("--sensing", action="append", default=[], help="NAME=DIR: another A pair, a stage-1 run folder")
    p.add_argument("--oracle-radius", type=int, default=3)
    p.add_argument("--oracle-eps", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu or cuda (the numbers agree to float rounding)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    text = markdown(*landscape(args))
    print(text)
    return text


if __name__ == "__main__":
    main()
