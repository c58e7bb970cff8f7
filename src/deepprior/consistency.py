"""A classical stage after a fit of a noiseless measurement: make the output agree with the data exactly.

When ``y = A x`` holds with no noise (super-resolution of a clean low-resolution photo, the known pixels of an
inpainting), any good restoration satisfies ``A x = y``. A stopped, averaged fit comes close but not all the
way; its orthogonal projection onto ``{x : A x = y}``,

    x = x0 + A^T (A A^T)^-1 (y - A x0),

is the image nearest to the fit that explains the data exactly (for super-resolution this is the fixed point
of iterative back-projection, Irani and Peleg 1991; for a mask it puts the known pixels back). It is computed by
conjugate gradients on the least-squares problem (CGLS) with the operator's adjoint, so any linear operator works,
and a measurement the operator cannot produce exactly (a photo that still shows the pixels a mask hides) is
matched where it can be; the mask's case is exact after one step.

:func:`collaborative_projection` then alternates that projection with a collaborative Wiener filter of the
estimate guided by itself (:func:`deepprior.blockmatch.collaborative_refine`) at decreasing noise levels: a
plug-and-play restoration (Venkatakrishnan, Bouman and Wohlberg 2013) started from the fit. Where half the
pixels are missing, repeated patches elsewhere in the image fill in what the fit blurred.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from deepprior.operators.base import Operator

__all__ = ["collaborative_projection", "project_to_data"]


@torch.no_grad()
def _adjoint(operator: Operator, u: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    with torch.enable_grad():
        return operator.adjoint(u, shape).detach()


def project_to_data(estimate: torch.Tensor, measurement: torch.Tensor, operator: Operator, *,
                    iterations: int = 30, tolerance: float = 1e-6, clip: bool = True) -> torch.Tensor:
    """``estimate`` moved by the smallest change that makes ``operator(x) == measurement`` (least squares
    when no image does), clipped to [0, 1] unless ``clip`` is false. ``iterations`` caps the
    conjugate-gradient steps.

    >>> from deepprior.operators import Mask
    >>> op = Mask(torch.tensor([[1.0, 0.0]]))
    >>> project_to_data(torch.tensor([[[[0.2, 0.7]]]]), torch.tensor([[[[0.5, 0.0]]]]), op).tolist()
    [[[[0.5, 0.699999988079071]]]]
    """
    x0 = estimate.detach().float()
    y = measurement.detach().to(x0)
    shape = tuple(x0.shape)
    # conjugate gradients on the least-squares problem (CGLS) started at x0: every correction lies in the range of
    # the adjoint, so the limit is x0's nearest least-squares solution, and a measurement with values the operator
    # cannot produce (a mask's hidden pixels) only has its explainable part matched
    with torch.no_grad():
        residual = y - operator(x0)
    correction = torch.zeros_like(x0)
    s = _adjoint(operator, residual, shape)
    p = s.clone()
    gamma = float((s * s).sum())
    start = gamma
    for _ in range(iterations):
        if gamma <= tolerance**2 * max(start, 1e-30):
            break
        with torch.no_grad():
            q = operator(p)
        curvature = float((q * q).sum())
        if curvature <= 0.0:
            break
        alpha = gamma / curvature
        correction += alpha * p
        residual -= alpha * q
        s = _adjoint(operator, residual, shape)
        new = float((s * s).sum())
        p = s + (new / gamma) * p
        gamma = new
    out = x0 + correction
    return out.clamp(0, 1) if clip else out


def collaborative_projection(estimate: torch.Tensor, measurement: torch.Tensor, operator: Operator,
                             levels: Sequence[float], **options: int) -> torch.Tensor:
    """For each noise level of ``levels`` (on the [0, 1] scale, best decreasing), ``estimate`` filtered by
    :func:`~deepprior.blockmatch.collaborative_refine` with itself as pilot, then projected onto the data: the
    result explains ``measurement`` exactly and is in [0, 1]. Start from a projected estimate (as
    :func:`deepprior.engine.projection_stage` does) so that the first filter sees the data. ``options``
    (patch, group, search, stride) go to the filter.

    >>> from deepprior.operators import Mask
    >>> known = (torch.rand(1, 1, 24, 24, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    >>> image = torch.linspace(0, 1, 24).repeat(1, 1, 24, 1)
    >>> grey, op = torch.full_like(image, 0.5), Mask(known)
    >>> out = collaborative_projection(project_to_data(grey, image * known, op), image * known, op, [0.2, 0.1, 0.05, 0.02])
    >>> error = lambda x: float(((x - image) ** 2).mean())
    >>> bool(torch.equal(out * known, image * known)), error(out) < error(project_to_data(grey, image * known, op)) / 3
    (True, True)
    """
    from deepprior.blockmatch import collaborative_refine

    if not levels:
        raise ValueError("collaborative_projection needs at least one noise level")
    y = measurement.detach().float()
    x = estimate.detach().float()
    for level in levels:
        x = project_to_data(collaborative_refine(x, x, float(level), **options), y, operator)
    return x
