"""Forward operators y = A(x): the corruption a measurement went through.

Every operator is a differentiable ``torch.nn.Module`` taking and returning
``(B, C, H, W)`` tensors, so the same fitting loop serves every task and a
user's own operator plugs in without touching it: pass any ``nn.Module``, or
any differentiable callable through :class:`Lambda` / :func:`as_operator`.
"""
from deepprior.operators.base import Box, Compose, Identity, Lambda, Operator, as_operator
from deepprior.operators.blur import Blur
from deepprior.operators.downsample import Downsample
from deepprior.operators.kernels import RESAMPLING_KERNELS, gaussian_kernel, resampling_kernel
from deepprior.operators.mask import Mask, bernoulli_mask

__all__ = [
    "RESAMPLING_KERNELS",
    "Blur",
    "Box",
    "Compose",
    "Downsample",
    "Identity",
    "Lambda",
    "Mask",
    "Operator",
    "as_operator",
    "bernoulli_mask",
    "gaussian_kernel",
    "resampling_kernel",
]
