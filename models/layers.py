"""Cached (streamable) convolutions and the blocks built from them.

A :class:`CachedConv1d` pads on the left only when causal, so output frame ``n`` never reads
input after ``n``. In streaming mode the left padding comes from a cache of the previous
call's last input samples instead of zeros: decoding chunk by chunk then equals decoding the
whole sequence. The cache lives either in a buffer (TorchScript / nn~ export: state hidden in
the module, batch 1 per loaded copy) or is passed explicitly (ONNX export: state in, state out).
"""

import torch
import torch.nn.functional as F
from torch import nn

_NO_STATE = torch.zeros(0)


class CachedConv1d(nn.Module):
    """1-D convolution whose padding can come from a cache of past input.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, dilation : int
        As :class:`torch.nn.Conv1d`. Inputs to a strided conv must be a multiple of ``stride``
        long; output length is ``input length / stride``.
    causal : bool
        Pad only on the left (streamable). Otherwise split padding (centred, not streamable).
    """

    cache: torch.Tensor
    weight_matrix: torch.Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        causal: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        total = (kernel_size - 1) * dilation + 1 - stride
        if total < 0:
            raise ValueError(f"kernel_size {kernel_size} too small for stride {stride}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilation = dilation
        self.causal = causal
        self.pad_left = total if causal else total // 2
        self.pad_right = 0 if causal else total - total // 2
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        if self.bias is not None:
            bound = 1.0 / (in_channels * kernel_size) ** 0.5
            nn.init.uniform_(self.bias, -bound, bound)
        # 0 = zero padding (training / whole sequence), 1 = cache buffer, 2 = explicit state.
        self.mode = 0
        self.use_matmul = False
        self.register_buffer("weight_matrix", torch.zeros(0), persistent=False)
        self.register_buffer("cache", torch.zeros(1, in_channels, self.pad_left), persistent=False)
        self.state_in: torch.Tensor = _NO_STATE
        self.state_out: torch.Tensor = _NO_STATE

    def _conv(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_matmul:
            return self._conv_matmul(x)
        return F.conv1d(x, self.weight, self.bias, self.stride, 0, self.dilation)

    def _conv_matmul(self, x: torch.Tensor) -> torch.Tensor:
        # Batch-1 Conv1d takes a slow path in torch on CPU; gathering the K shifted views and
        # doing one matmul gives identical output at about half the cost (ARCHITECTURE.md).
        n_out = (x.shape[-1] - (self.kernel_size - 1) * self.dilation - 1) // self.stride + 1
        span = (n_out - 1) * self.stride + 1
        if self.kernel_size == 1:
            cols = x[..., 0 : span : self.stride]
        else:
            views = [
                x[..., i * self.dilation : i * self.dilation + span : self.stride]
                for i in range(self.kernel_size)
            ]
            cols = torch.cat(views, 1)
        y = torch.matmul(self.weight_matrix, cols)
        if self.bias is not None:
            y = y + self.bias.unsqueeze(-1)
        return y

    def prepare_inference(self) -> None:
        """Precompute the (out, kernel*in) weight matrix and switch to the matmul path."""
        w = self.weight.detach().permute(0, 2, 1).reshape(self.out_channels, -1)
        self.weight_matrix = w.contiguous()
        self.use_matmul = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve.

        Parameters
        ----------
        x : Tensor, shape (batch, in_channels, time), float32

        Returns
        -------
        Tensor, shape (batch, out_channels, time // stride), float32
        """
        if self.mode == 0 or self.pad_left == 0:
            if self.pad_left or self.pad_right:
                x = F.pad(x, (self.pad_left, self.pad_right))
            return self._conv(x)
        if self.mode == 1:
            if self.cache.shape[0] != x.shape[0]:
                # A new batch size (another nn~ voice layout) starts from silence.
                self.cache = torch.zeros(
                    x.shape[0], self.in_channels, self.pad_left, dtype=x.dtype, device=x.device
                )
            x = torch.cat([self.cache, x], -1)
            self.cache.copy_(x[..., x.shape[-1] - self.pad_left :])
            return self._conv(x)
        x = torch.cat([self.state_in, x], -1)
        self.state_out = x[..., x.shape[-1] - self.pad_left :]
        return self._conv(x)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One streaming frame (mode 1 or 2, stride 1), (batch, in) → (batch, out): what
        :meth:`forward` gives for a (batch, in, 1) input, as one ``F.linear`` over the taps
        it reads, the cache moving on exactly as there. Fewer ops per frame (issue 13)."""
        w = self.weight.reshape(self.out_channels, -1)  # (out, in · kernel), in-major
        if self.pad_left == 0:
            return F.linear(x, w, self.bias)
        past = self.cache if self.mode == 1 else self.state_in
        full = torch.cat([past, x.unsqueeze(-1)], -1)  # (batch, in, pad_left + 1)
        if self.mode == 1:
            self.cache.copy_(full[..., 1:])
        else:
            self.state_out = full[..., 1:]
        return F.linear(full[..., :: self.dilation].reshape(x.shape[0], -1), w, self.bias)


def cached_convs(module: nn.Module) -> list[CachedConv1d]:
    """Every :class:`CachedConv1d` in ``module`` that carries state, in call order."""
    return [m for m in module.modules() if isinstance(m, CachedConv1d) and m.pad_left > 0]


def set_streaming(module: nn.Module, streaming: bool, batch_size: int = 1) -> None:
    """Switch every cached conv in ``module`` to buffer streaming (True) or zero padding.

    Raises
    ------
    ValueError
        When asked to stream a non-causal convolution (it would need future input).
    """
    for conv in cached_convs(module):
        if streaming and not conv.causal:
            raise ValueError("streaming needs a causal model (config causal=true)")
        conv.mode = 1 if streaming else 0
        conv.cache = torch.zeros(batch_size, conv.in_channels, conv.pad_left)


def reset_streaming(module: nn.Module) -> None:
    """Zero every cache (start a fresh signal). Not for the audio thread: allocates nothing,
    but walks the module tree."""
    for conv in cached_convs(module):
        conv.cache.zero_()


class Upsample(nn.Module):
    """Causal sub-pixel upsampling: one conv emits ``factor`` output samples per input sample.

    Unlike a transposed conv, output frame ``n`` depends on input frames ≤ ``n`` only, so it
    streams with a plain left cache.
    """

    def __init__(self, in_channels: int, out_channels: int, factor: int, causal: bool) -> None:
        super().__init__()
        self.factor = factor
        self.out_channels = out_channels
        self.conv = CachedConv1d(in_channels, out_channels * factor, 3, causal=causal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, in_channels, time) → (batch, out_channels, time * factor)."""
        y = self.conv(x)
        b, t = y.shape[0], y.shape[-1]
        y = y.reshape(b, self.out_channels, self.factor, t).transpose(2, 3)
        return y.reshape(b, self.out_channels, t * self.factor)


class ResBlock(nn.Module):
    """LeakyReLU → dilated conv (k=3) → LeakyReLU → 1×1 conv, added to the input."""

    def __init__(self, channels: int, dilation: int, causal: bool) -> None:
        super().__init__()
        self.conv1 = CachedConv1d(channels, channels, 3, dilation=dilation, causal=causal)
        self.conv2 = CachedConv1d(channels, channels, 1, causal=causal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, channels, time) → same shape."""
        y = self.conv1(F.leaky_relu(x, 0.2))
        return x + self.conv2(F.leaky_relu(y, 0.2))

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One streaming frame, (batch, channels) → same (see :meth:`CachedConv1d.step`)."""
        y = self.conv1.step(F.leaky_relu(x, 0.2))
        return x + self.conv2.step(F.leaky_relu(y, 0.2))
