"""Training step of the ``vae`` family: the (beta-)ELBO with the reparameterisation trick."""

from __future__ import annotations

import torch

from ..regularizers import gaussian_kl, reconstruction_loss
from ..step import register_step
from .ae import AutoencoderStep


@register_step("vae")
class VAEStep(AutoencoderStep):
    """Minimise reconstruction (summed over pixels) + beta * KL(q(z|x,y) ‖ N(0, I))."""

    def __call__(self, real_images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.config
        _, out, penalties = self.autoencode(real_images, labels)
        rec = reconstruction_loss(out.reconstruction, real_images, c.reconstruction_loss, reduction="sum")
        kl = gaussian_kl(out.mean, out.logvar)
        self.update(rec + c.beta * kl + sum(penalties.values()))
        pixels = real_images[0].numel()
        return {"rec_loss": rec.detach() / pixels, "kl_loss": kl.detach(),
                **{k: v.detach() for k, v in penalties.items()}}
