"""A PyTorch MONet of the sizes of `aloe.models.monet.MONet`, for timing comparisons only.

The same mathematics as the JAX model (see `aloe/models/monet.py`): the
attention U-Net (conv3x3 without bias, instance norm, ReLU, nearest-neighbour
resizing, the bottleneck MLP) run K-1 times in the log-space stick-breaking
recursion, the strided component encoder on `[x, log m_k]`, the spatial
broadcast decoder with its first conv split into a latent matmul and one
convolution of the coordinates (as the JAX model computes it), and the same
loss. Tensors are channels-last (`torch.channels_last`), the layout PyTorch's
CPU convolutions run fastest. torch is imported by the benchmarks only.
"""

import math
import time
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F


class ConvNormReLU(nn.Module):
    """conv3x3 (no bias) -> instance norm (affine) -> ReLU."""

    def __init__(self, in_channels: int, features: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, features, 3, padding=1, bias=False)
        self.norm = nn.InstanceNorm2d(features, eps=1e-5, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class UNet(nn.Module):
    """MONet's attention U-Net: `[N, C_in, H, W] -> [N, 1, H, W]`."""

    def __init__(self, in_channels: int, image_size: int, channels: Sequence[int],
                 mlp_hidden: Sequence[int]):
        super().__init__()
        self.down = nn.ModuleList()
        previous = in_channels
        for features in channels:
            self.down.append(ConvNormReLU(previous, features))
            previous = features
        self.bottleneck_side = image_size // 2 ** (len(channels) - 1)
        size = channels[-1] * self.bottleneck_side**2
        sizes = [size] + list(mlp_hidden) + [size]
        self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.up = nn.ModuleList()
        x_channels = channels[-1]
        for i in reversed(range(len(channels))):
            out = channels[max(i - 1, 0)]
            self.up.append(ConvNormReLU(x_channels + channels[i], out))
            x_channels = out
        self.out = nn.Conv2d(x_channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            skips.append(x)
            if i < len(self.down) - 1:
                x = x[:, :, ::2, ::2]
        shape = x.shape
        # Flattened in (H, W, C) order as the JAX model does (NHWC).
        x = x.permute(0, 2, 3, 1).reshape(shape[0], -1)
        for layer in self.mlp:
            x = F.relu(layer(x))
        x = x.reshape(shape[0], shape[2], shape[3], shape[1]).permute(0, 3, 1, 2)
        x = x.contiguous(memory_format=torch.channels_last)
        for level, block in zip(reversed(range(len(self.down))), self.up):
            x = block(torch.cat([x, skips[level]], dim=1))
            if level > 0:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.out(x)


class TorchMONet(nn.Module):
    """MONet at the JAX model's sizes; `forward(images)` returns the scalar loss."""

    def __init__(self, num_slots: int = 8, latent_dim: int = 16, image_size: int = 64,
                 unet_channels: Sequence[int] = (32, 32, 64, 64, 64),
                 unet_mlp_hidden: Sequence[int] = (128, 128),
                 encoder_channels: Sequence[int] = (32, 32, 64, 64), encoder_hidden: int = 256,
                 decoder_channels: Sequence[int] = (32, 32, 32, 32), sigma_bg: float = 0.09,
                 sigma_fg: float = 0.11, beta: float = 0.5, gamma: float = 0.5):
        super().__init__()
        self.num_slots, self.latent_dim, self.image_size = num_slots, latent_dim, image_size
        self.sigma_bg, self.sigma_fg, self.beta, self.gamma = sigma_bg, sigma_fg, beta, gamma
        self.unet = UNet(4, image_size, unet_channels, unet_mlp_hidden)
        convs, previous = [], 4
        for features in encoder_channels:
            convs.append(nn.Conv2d(previous, features, 3, stride=2, padding=1))
            previous = features
        self.encoder_convs = nn.ModuleList(convs)
        side = image_size // 2 ** len(encoder_channels)
        self.encoder_hidden = nn.Linear(previous * side * side, encoder_hidden)
        self.encoder_gaussian = nn.Linear(encoder_hidden, 2 * latent_dim)
        self.decoder_side = image_size + 2 * len(decoder_channels)
        self.broadcast_conv = nn.Conv2d(latent_dim + 2, decoder_channels[0], 3)
        convs, previous = [], decoder_channels[0]
        for features in decoder_channels[1:]:
            convs.append(nn.Conv2d(previous, features, 3))
            previous = features
        self.decoder_convs = nn.ModuleList(convs)
        self.decoder_out = nn.Conv2d(previous, 4, 1)
        coords = torch.linspace(-1.0, 1.0, self.decoder_side)
        y, x = torch.meshgrid(coords, coords, indexing="ij")
        self.register_buffer("coordinates", torch.stack([y, x])[None])

    def attention(self, images: torch.Tensor) -> torch.Tensor:
        """Log masks `[B, K, 1, H, W]`."""
        log_scope = torch.zeros_like(images[:, :1])
        log_masks = []
        for _ in range(self.num_slots - 1):
            logits = self.unet(torch.cat([images, log_scope], dim=1))
            log_masks.append(log_scope + F.logsigmoid(logits))
            log_scope = log_scope + F.logsigmoid(-logits)
        log_masks.append(log_scope)
        return torch.stack(log_masks, dim=1)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`[N, d] -> (rgb [N, 3, S, S], mask logits [N, 1, S, S])`."""
        weight = self.broadcast_conv.weight  # [F, d + 2, 3, 3]
        coordinate_part = F.conv2d(self.coordinates, weight[:, self.latent_dim:],
                                   self.broadcast_conv.bias)
        latent_part = z @ weight[:, :self.latent_dim].sum(dim=(2, 3)).t()
        h = F.relu(latent_part[:, :, None, None] + coordinate_part)
        h = h.contiguous(memory_format=torch.channels_last)
        for layer in self.decoder_convs:
            h = F.relu(layer(h))
        out = self.decoder_out(h)
        return torch.sigmoid(out[:, :3]), out[:, 3:]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """MONet's loss of channels-last images `[B, 3, H, W]` (sampled latents)."""
        batch, slots = images.shape[0], self.num_slots
        log_masks = self.attention(images)  # [B, K, 1, H, W]
        slot_inputs = torch.cat([images[:, None].expand(-1, slots, -1, -1, -1), log_masks], 2)
        h = slot_inputs.reshape(batch * slots, 4, self.image_size, self.image_size)
        h = h.contiguous(memory_format=torch.channels_last)
        for layer in self.encoder_convs:
            h = F.relu(layer(h))
        h = h.permute(0, 2, 3, 1).reshape(batch * slots, -1)
        mu, logvar = self.encoder_gaussian(F.relu(self.encoder_hidden(h))).chunk(2, dim=-1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        rgb, mask_logits = self.decode(z)
        size = self.image_size
        rgb = rgb.reshape(batch, slots, 3, size, size)
        mask_logits = mask_logits.reshape(batch, slots, 1, size, size)
        sigmas = torch.full((slots,), self.sigma_fg)
        sigmas[0] = self.sigma_bg
        sigmas = sigmas[None, :, None, None, None]
        normalised = (images[:, None] - rgb) / sigmas
        log_lik = (-0.5 * normalised**2 - torch.log(sigmas)
                   - 0.5 * math.log(2 * math.pi)).sum(dim=2)
        nll = -torch.logsumexp(log_masks[:, :, 0] + log_lik, dim=1).sum(dim=(1, 2))
        kl_z = 0.5 * (torch.exp(logvar) + mu**2 - 1.0 - logvar).reshape(batch, -1).sum(-1)
        log_decoded = F.log_softmax(mask_logits, dim=1)
        kl_masks = (torch.exp(log_masks) * (log_masks - log_decoded)).sum(dim=(1, 2, 3, 4))
        return nll.mean() + self.beta * kl_z.mean() + self.gamma * kl_masks.mean()


def time_training(batch: int, steps: int, warmup: int, **sizes) -> list[float]:
    """Step times (s) of forward, loss, backward and an RMSProp update on random images."""
    torch.manual_seed(0)
    model = TorchMONet(**sizes).to(memory_format=torch.channels_last)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-4)
    size = model.image_size
    images = torch.rand(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = model(images)
        loss.backward()
        optimizer.step()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"The PyTorch MONet's loss is not finite: {loss.item()}.")
        if step >= warmup:
            times.append(time.perf_counter() - start)
    return times
