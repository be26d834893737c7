"""RMSNorm and RoPE forms, forward + backward, side by side at the nobos shape (one thread).

    python benchmarks/bench_layers.py [--reps 15] [--iters 50]

Every form is checked against the first (the plain formula) before it is timed. Rounds interleave the
forms (A B C A B C ...); the table gives the median time per call and its min-max over rounds, and the
ratio to the first form within each round. The forms measured here are the candidates for
sinklab.model.norms.RMSNorm and sinklab.model.positions.Rope; the winner is what sinklab uses.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

# nobos: batch 8, context 256, d 128, 4 heads of 32 (q and k rotated together: 8 heads)
B, T, D, HEADS, HEAD_DIM = 8, 256, 128, 8, 32


# ---- RMSNorm -------------------------------------------------------------------------------------------
def rms_formula(x, w, eps=1e-5):
    """The plain formula, in fp32 (sinklab's form before this benchmark)."""
    dtype = x.dtype
    x = x.float()
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return w * x.to(dtype)


def rms_torch(x, w, eps=1e-5):
    """torch.nn.functional.rms_norm."""
    return F.rms_norm(x, (x.shape[-1],), w, eps)


class _RMSFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, eps):
        rstd = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
        xhat = x * rstd
        ctx.save_for_backward(xhat, rstd, w)
        return xhat * w

    @staticmethod
    def backward(ctx, g):
        xhat, rstd, w = ctx.saved_tensors
        gw = g * w
        dx = rstd * (gw - xhat * (gw * xhat).mean(-1, keepdim=True))
        dw = (g * xhat).flatten(0, -2).sum(0)
        return dx, dw, None


def rms_custom(x, w, eps=1e-5):
    """A hand-written autograd function (x̂ and 1/rms saved, one fused backward formula)."""
    return _RMSFunction.apply(x, w, eps)


class _RMSFunctionFewerPasses(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, eps):
        rstd = torch.rsqrt(torch.linalg.vector_norm(x, dim=-1, keepdim=True).square() / x.shape[-1] + eps)
        xhat = x * rstd
        ctx.save_for_backward(xhat, rstd, w)
        return xhat * w

    @staticmethod
    def backward(ctx, g):
        xhat, rstd, w = ctx.saved_tensors
        gw = g * w
        coef = torch.linalg.vecdot(gw, xhat).unsqueeze(-1) * (-rstd / xhat.shape[-1])
        dx = torch.addcmul(gw * rstd, xhat, coef)
        dw = (g * xhat).flatten(0, -2).sum(0)
        return dx, dw, None


class _RMSFunctionGemv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, eps):
        rstd = torch.rsqrt(torch.linalg.vector_norm(x, dim=-1, keepdim=True).square() / x.shape[-1] + eps)
        xhat = x * rstd
        ctx.save_for_backward(xhat, rstd, w)
        return xhat * w

    @staticmethod
    def backward(ctx, g):
        xhat, rstd, w = ctx.saved_tensors
        gx = g * xhat
        dw = gx.flatten(0, -2).sum(0)
        coef = (gx @ w).unsqueeze(-1).mul_(-1.0 / xhat.shape[-1])  # -mean(g w x̂) by a matrix-vector product
        dx = torch.addcmul(xhat * coef, g, w).mul_(rstd)
        return dx, dw, None


def rms_gemv(x, w, eps=1e-5):
    """The autograd function, mean(g w x̂) as (g x̂) @ w, which also gives the weight's gradient."""
    return _RMSFunctionGemv.apply(x, w, eps)


def rms_fewer(x, w, eps=1e-5):
    """The autograd function with fewer passes: vector_norm, vecdot and addcmul."""
    return _RMSFunctionFewerPasses.apply(x, w, eps)


# ---- RoPE ----------------------------------------------------------------------------------------------
INV_FREQ = 1.0 / (10000.0 ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float32) / HEAD_DIM))
POS = torch.arange(T)


def _tables():
    freqs = POS.float().view(-1, 1) * INV_FREQ.view(1, -1)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


COS, SIN = _tables()
SIN_SIGNED = torch.cat((-SIN[:, : HEAD_DIM // 2], SIN[:, HEAD_DIM // 2 :]), dim=-1)


def _rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rope_per_call(x):
    """Tables computed in every call, rotate_half (sinklab's form before this benchmark)."""
    cos, sin = _tables()
    return x * cos + _rotate_half(x) * sin


def rope_tables(x):
    """Precomputed cos/sin tables, rotate_half."""
    return x * COS + _rotate_half(x) * SIN


def rope_roll(x):
    """Precomputed tables, the sign folded into sin: x cos + roll(x, D/2) sin±."""
    return x * COS + x.roll(HEAD_DIM // 2, dims=-1) * SIN_SIGNED


class _RopeHalvesOut(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, cos, sin):
        ctx.save_for_backward(cos, sin)
        return _rotate_halves(x, cos, sin, 1.0)

    @staticmethod
    def backward(ctx, g):
        cos, sin = ctx.saved_tensors
        return _rotate_halves(g, cos, sin, -1.0), None, None


def _rotate_halves(x, cos, sin, sign):
    half = x.shape[-1] // 2
    out = torch.empty_like(x)
    x1, x2, o1, o2 = x[..., :half], x[..., half:], out[..., :half], out[..., half:]
    torch.mul(x1, cos, out=o1).addcmul_(x2, sin, value=-sign)
    torch.mul(x2, cos, out=o2).addcmul_(x1, sin, value=sign)
    return out


HALF_COS, HALF_SIN = COS[:, : HEAD_DIM // 2].contiguous(), SIN[:, : HEAD_DIM // 2].contiguous()


def rope_halves_out(x):
    """Half tables, each output half written in place by mul and addcmul_ (no roll), both ways."""
    return _RopeHalvesOut.apply(x, HALF_COS, HALF_SIN)


def rope_halves(x):
    """Precomputed half tables, the two halves rotated as a pair (no concatenation of signs)."""
    half = HEAD_DIM // 2
    c, s = COS[:, :half], SIN[:, :half]
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * c - x2 * s, x2 * c + x1 * s), dim=-1)


class _RopeFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, cos, sin_signed):
        ctx.save_for_backward(cos, sin_signed)
        return x * cos + x.roll(HEAD_DIM // 2, dims=-1) * sin_signed

    @staticmethod
    def backward(ctx, g):
        cos, sin_signed = ctx.saved_tensors
        # The rotation's transpose: roll by D/2 is its own inverse, and the signed sin moves with it.
        return g * cos + (g * sin_signed).roll(HEAD_DIM // 2, dims=-1), None, None


def rope_custom(x):
    """Precomputed tables, roll form, a hand-written autograd function (the transpose rotation)."""
    return _RopeFunction.apply(x, COS, SIN_SIGNED)


class _RopeAddcmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, cos, sin_signed):
        ctx.save_for_backward(cos, sin_signed)
        return torch.addcmul(x * cos, x.roll(HEAD_DIM // 2, dims=-1), sin_signed)

    @staticmethod
    def backward(ctx, g):
        cos, sin_signed = ctx.saved_tensors
        # roll(sin_signed, D/2) = -sin_signed (its halves are -s, s): the transpose is one addcmul too.
        return torch.addcmul(g * cos, g.roll(HEAD_DIM // 2, dims=-1), sin_signed, value=-1), None, None


def rope_addcmul(x):
    """Precomputed tables, roll form, addcmul forward and backward (3 passes each)."""
    return _RopeAddcmul.apply(x, COS, SIN_SIGNED)


def rope_complex(x):
    """Complex multiplication on (x1, x2) pairs viewed as complex numbers (needs a permuted layout copy)."""
    half = HEAD_DIM // 2
    z = torch.complex(x[..., :half].contiguous(), x[..., half:].contiguous())
    rot = torch.polar(torch.ones_like(COS[:, :half]), POS.float().view(-1, 1) * INV_FREQ.view(1, -1))
    out = z * rot
    return torch.cat((out.real, out.imag), dim=-1)


def time_forms(forms, make_inputs, reps, iters):
    inputs = make_inputs()
    ref = forms[0](*inputs)
    for form in forms[1:]:
        torch.testing.assert_close(form(*inputs), ref, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(ref)
    times = {f.__name__: [] for f in forms}
    for form in forms:  # warm-up
        form(*inputs).backward(grad)
    for _ in range(reps):
        for form in forms:
            t0 = time.process_time()
            for _ in range(iters):
                form(*inputs).backward(grad)
            times[form.__name__].append((time.process_time() - t0) / iters)
    first = forms[0].__name__
    print("| form | ms per call (fwd+bwd), median (min-max) | ratio to the first, median (min-max) |")
    print("|---|---|---|")
    for form in forms:
        t = times[form.__name__]
        r = [a / b for a, b in zip(t, times[first], strict=True)]
        print(
            f"| {form.__name__}: {form.__doc__.splitlines()[0]} | {statistics.median(t) * 1e3:.3f} "
            f"({min(t) * 1e3:.3f}-{max(t) * 1e3:.3f}) | "
            f"{statistics.median(r):.2f} ({min(r):.2f}-{max(r):.2f}) |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--iters", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    def norm_inputs():
        return torch.randn(B, T, D, requires_grad=True), torch.ones(D, requires_grad=True)

    print(f"RMSNorm, x ({B}, {T}, {D}) fp32")
    time_forms([rms_formula, rms_torch, rms_custom, rms_fewer, rms_gemv], norm_inputs, args.reps, args.iters)

    def rope_inputs():
        base = torch.randn(B, T, HEADS, HEAD_DIM).transpose(1, 2)  # a (B, H, T, D) view, as in attention
        return (base.requires_grad_(),)

    print(f"\nRoPE, x ({B}, {HEADS}, {T}, {HEAD_DIM}) fp32 (q and k of 4 heads each)")
    time_forms(
        [
            rope_per_call,
            rope_tables,
            rope_roll,
            rope_custom,
            rope_addcmul,
            rope_halves_out,
            rope_halves,
            rope_complex,
        ],
        rope_inputs,
        args.reps,
        args.iters,
    )


if __name__ == "__main__":
    main()
