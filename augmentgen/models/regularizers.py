"""Penalties for the encoder families, as plain functions a training step picks from.

- :func:`contractive_penalty`: the contractive autoencoder's ‖∂z/∂x‖²_F (Rifai et al. 2011),
  estimated with Hutchinson's trick from vector-Jacobian products, so the (latent × pixels)
  Jacobian is never built: for u with E[u uᵀ] = I, E‖uᵀ J‖² = tr(J Jᵀ) = ‖J‖²_F.
- :func:`weight_penalty`: the simpler L1 / L2 penalty on a module's weights.
- :func:`reconstruction_loss`: MSE or BCE between images in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def contractive_penalty(codes: torch.Tensor, inputs: torch.Tensor, *, num_projections: int = 1,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Unbiased estimate of the batch mean of ‖∂codes_i/∂inputs_i‖²_F, differentiable.

    Args:
        codes: (B, d) computed from ``inputs`` with autograd, each row from its own input only
            (no batch norm in between), so one VJP gives every sample's uᵢᵀ Jᵢ at once.
        inputs: (B, ...) with ``requires_grad=True``.
        num_projections: Rademacher probe vectors per sample; the variance falls as 1/n.
        generator: for reproducible probes.

    Returns:
        A scalar tensor with a graph back to the parameters (``create_graph=True``).
    """
    total = codes.new_zeros(codes.shape[0])
    for _ in range(num_projections):
        # Rademacher probes have the lowest variance among Hutchinson probes.
        u = torch.randint(0, 2, codes.shape, device=codes.device, generator=generator)
        u = u.to(codes.dtype) * 2 - 1
        (vjp,) = torch.autograd.grad(codes, inputs, grad_outputs=u, create_graph=True,
                                     retain_graph=True)
        total = total + vjp.flatten(1).square().sum(dim=1)  # (b,) ‖uᵢᵀ Jᵢ‖²
    return (total / num_projections).mean()


def jacobian_frobenius_norm(fn, inputs: torch.Tensor) -> torch.Tensor:
    """Exact per-sample ‖∂fn(x)ᵢ/∂xᵢ‖_F (B,) for ``fn`` mapping (B, ...) -> (B, d) row by row.

    Rows are independent, so the Jacobian of the batch sum Σᵢ fn(x)ᵢ holds every sample's
    Jacobian side by side: d backward passes, whatever the batch size. Builds the full
    Jacobian: for measurement and tests, not for training.
    """
    jac = torch.func.jacrev(lambda x: fn(x).sum(dim=0))(inputs.detach())  # (d, b, *input_shape)
    return jac.transpose(0, 1).flatten(1).norm(dim=1)


def weight_penalty(module: nn.Module, kind: str) -> torch.Tensor:
    """``"l1"``: Σ|w|, ``"l2"``: Σw² over ``module``'s matrices and kernels (parameters with
    more than one dimension, so not biases); ``"none"``: 0."""
    weights = [p for name, p in module.named_parameters() if p.ndim > 1 and p.requires_grad]
    if kind == "none" or not weights:
        return torch.zeros((), device=next(module.parameters()).device)
    if kind == "l1":
        return torch.stack([w.abs().sum() for w in weights]).sum()
    if kind == "l2":
        return torch.stack([w.square().sum() for w in weights]).sum()
    raise ValueError(f"weight penalty must be 'none', 'l1' or 'l2', got {kind!r}")


def reconstruction_loss(reconstruction: torch.Tensor, target: torch.Tensor, kind: str = "mse",
                        *, reduction: str = "mean") -> torch.Tensor:
    """Per-pixel ``"mse"`` or ``"bce"`` between images in [-1, 1] (BCE maps both to [0, 1]).

    ``reduction="mean"`` averages over every pixel; ``"sum"`` sums over pixels and averages over
    the batch (the likelihood scale a VAE's KL term is weighed against).
    """
    if kind == "mse":
        per_pixel = (reconstruction - target).square()
    elif kind == "bce":
        p = ((reconstruction + 1) / 2).clamp(1e-6, 1 - 1e-6)
        per_pixel = F.binary_cross_entropy(p, (target + 1) / 2, reduction="none")
    else:
        raise ValueError(f"reconstruction loss must be 'mse' or 'bce', got {kind!r}")
    if reduction == "sum":
        return per_pixel.flatten(1).sum(dim=1).mean()
    return per_pixel.mean()


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) ‖ N(0, I)) summed over dimensions, averaged over the batch."""
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).sum(dim=1).mean()


def encoder_penalties(config, output, inputs: torch.Tensor, encoder: nn.Module) -> dict[str, torch.Tensor]:
    """The contractive and weight penalties an encoder family's config asks for, weighted.

    ``output`` is the family's :class:`~augmentgen.models.encoder.AutoencoderOutput` computed
    from ``inputs`` (which needs ``requires_grad`` when ``config.contractive_weight > 0``).
    Returns only the terms that are switched on, keyed ``contractive_loss`` / ``weight_loss``.
    """
    terms: dict[str, torch.Tensor] = {}
    if config.contractive_weight > 0:
        terms["contractive_loss"] = config.contractive_weight * contractive_penalty(
            output.mean, inputs, num_projections=config.contractive_projections)
    if config.weight_penalty != "none":
        terms["weight_loss"] = config.weight_penalty_weight * weight_penalty(encoder, config.weight_penalty)
    return terms
