"""The vocabulary projection and the training loss in one pass, a chunk of rows at a time.

The loss of a language model is a weighted mean of -log softmax(h W^T)[target] over positions. Computed the
plain way, the (positions, vocabulary) logits are written, read by the log-softmax, saved, read again for the
gradient and once more by each of the two backward GEMMs: at the nobos shape that is a 16 MB tensor, larger
than the cache, passed over six times. Here each chunk of rows is projected, reduced and turned into its
gradient while it is still in cache, and the gradients of h and W are formed right away (the loss is a scalar,
so backward only scales them): no (positions, vocabulary) tensor outlives a chunk. The numbers are the plain
computation's up to float rounding (tests/model/test_loss.py); benchmarks/bench_gpt2.py times it in a step.
"""

from __future__ import annotations

import torch

# fp32 logits per chunk: on a CPU 4 MB, so that a chunk's passes hit the cache; on a GPU 256 MB, where the
# point is memory (a 60m-shape step's logits are 4 GB) and larger GEMMs keep the card busy. At least this many
# rows per chunk, so that the GEMMs stay large for big vocabularies.
LOGITS_PER_CHUNK = {"cpu": 1 << 20, "other": 1 << 26}
MIN_CHUNK_ROWS = 256


def target_weights(targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N,) fp32 weights of the flattened (B, T) targets: the (T,) mask of counted targets over every
    sequence, normalised to sum 1 (the loss is their mean)."""
    weights = mask.to(torch.float32).expand(targets.shape).flatten()
    return weights / weights.sum()


def chunk_rows(vocab: int, device_type: str = "cpu") -> int:
    logits = LOGITS_PER_CHUNK.get(device_type, LOGITS_PER_CHUNK["other"])
    return max(MIN_CHUNK_ROWS, logits // max(1, vocab))


class _HeadCrossEntropy(torch.autograd.Function):
    """sum_n w_n (-log softmax(h_n W^T)[t_n]) for h (N, d), W (V, d), targets t (N,), weights w (N,). The
    GEMMs run in the autocast dtype where autocast is on (as the separate lm_head would); the softmax, the
    loss and W's gradient accumulate in fp32."""

    @staticmethod
    def forward(
        ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        device = hidden.device.type
        mm_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
        want_h, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        with torch.autocast(device, enabled=False):
            h, w = hidden.to(mm_dtype), weight.to(mm_dtype)
            grad_h = torch.empty_like(hidden) if want_h else None
            grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if want_w else None
            loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
            step = chunk_rows(weight.shape[0], device)
            for start in range(0, h.shape[0], step):
                rows = slice(start, start + step)
                logits = (h[rows] @ w.t()).float()
                target = targets[rows].unsqueeze(1)
                picked = logits.gather(1, target).squeeze(1)
                top = logits.amax(1, keepdim=True)
                exp = logits.sub_(top).exp_()  # in place: the chunk's logits are not needed again
                total = exp.sum(1)
                loss += ((top.squeeze(1) + total.log() - picked) * weights[rows]).sum()
                if not (want_h or want_w):
                    continue
                # d loss / d logits = w_n (softmax - one-hot), formed in the same buffer
                scale = (weights[rows] / total).unsqueeze(1)
                grad = exp.mul_(scale).scatter_add_(1, target, -weights[rows].unsqueeze(1)).to(mm_dtype)
                if want_h:
                    grad_h[rows] = grad @ w
                if want_w:
                    grad_w += (grad.t() @ h[rows]).float()
        ctx.save_for_backward(grad_h, grad_w)
        ctx.weight_dtype = weight.dtype
        return loss

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad_h, grad_w = ctx.saved_tensors
        dh = grad_h * grad.to(grad_h.dtype) if grad_h is not None else None
        dw = (grad_w * grad).to(ctx.weight_dtype) if grad_w is not None else None
        return dh, dw, None, None


def head_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy (fp32) of the lm_head `weight` (V, d) over final hidden states (B, T, d) against
    targets (B, T), counting the target positions the (T,) bool `mask` keeps: the value and gradients of
    `masked_loss(hidden @ weight.T, targets, mask)` without forming the (B, T, V) logits."""
    weights = target_weights(targets, mask.to(hidden.device))
    return _HeadCrossEntropy.apply(hidden.flatten(0, 1), weight, targets.flatten(), weights)
