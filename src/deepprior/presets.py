"""Named recipes: the paper's experiments, kept as data.

A preset says which generator to build, what to feed it, and how to fit it.
It is never a copy of the loop: :func:`deepprior.pipeline.restore` reads it. The
values come from the original Deep Image Prior notebooks (Ulyanov, Vedaldi,
Lempitsky, CVPR 2018 / IJCV 2020), so that improvements are measured against
the true baseline.
"""
from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from deepprior.fitting import FitConfig

__all__ = ["PRESETS", "Preset", "default_denoise_preset", "get_preset", "load_preset"]

#: The paper's denoising / super-resolution network: 5 scales of 128
#: channels, 4-channel skips, bilinear upsampling (2,217,831 parameters).
PAPER_SKIP: Mapping[str, Any] = MappingProxyType(
    {
        "channels_down": (128,) * 5,
        "channels_up": (128,) * 5,
        "channels_skip": (4,) * 5,
        "upsample_mode": "bilinear",
        "pad": "reflection",
    }
)


#: Input noise of the ``fast`` preset, chosen on the Set9 128x128 crops at sigma 25 with automatic stopping
#: (``bench/studies/recipe_probe.py``, network alone): 1/100 gives 29.17 dB after 553 steps on average, 1/80 29.30
#: after 686, 1/60 29.50 after 854 (the paper's recipe with ``denoise``: 29.87 after 831 steps, each 3x
#: dearer). 1/60 overruns 1/20 of the paper recipe's time, and after the Wiener stage the choice matters
#: less: 1/80 gives 30.35, no input noise 30.09 (after 320 steps). The network's 8-channel input and zero
#: padding make each step 1.44x cheaper at 256x256 for 0.03 dB on these crops; stopping at 1.02x the noise
#: level saves about 15 % of the steps, which the Wiener stage does not miss (README, Time to quality).
FAST_INPUT_NOISE = 0.0125

#: Budget of ``fast`` in steps times pixels (650 steps at 512x512), so that a full-size photo costs minutes,
#: not the quarter of an hour the automatic stop takes on the F16 512x512 image (about 2500 steps): a fit
#: stopped early is still a good pilot for the Wiener stage after it. Chosen for time only (no quality figure of
#: a table image went into it), at 0.36 s a step at 512x512 on a 2-core CPU, to finish a 512x512 photo in under
#: 5 minutes: 700 steps did with one collaborative pass, but with three the F16 check took 283 s and a 512x512
#: image of the Set9 table 299 s, too close. What the budget costs was measured on whole CBSD68 photos 101085,
#: 101087 and 102061 at sigma 25 (``bench/studies/denoise_budget.py --data ../shared/data --images
#: 101085,101087,102061 --steps 1500``; their 481x321 pixels now allow 1103 steps): after the Wiener mixture and
#: one collaborative pass 24.73, 27.72 and 29.05 dB at 600 steps, 25.81, 28.36 and 29.90 at 1200 and 26.14, 28.60
#: and 30.10 at 1500, each 0.26 s (the Wiener mixture alone: 0.3 to 1.0 dB less). Up to 256x256 the budget
#: allows 2600 steps or more, beyond where the automatic stop ends a fit.
FAST_PIXEL_STEPS = 650 * 512 * 512

#: Collaborative Wiener passes of ``fast`` after its Wiener mixture, each piloted by the one before. Chosen on
#: whole CBSD68 photos 101085, 101087 and 102061 at sigma 25, each from the pilot the default fit gives within its
#: budget of then (1188 steps at 481x321; ``bench/studies/denoise_stage.py --data ../shared/data --images
#: 101085,101087,102061``, rows in ``bench/results/denoise_stage.json``): one, two, three and six passes give
#: 25.80 / 26.28 / 26.56 / 26.95, 28.35 / 28.65 / 28.84 / 29.10 and 29.88 / 30.19 / 30.32 / 30.45 dB (CBM3D 27.58,
#: 29.59, 31.10). Each pass takes the estimate toward what the filter makes of the noisy image by itself: from
#: the noisy image as pilot, three passes give 26.62, 28.09 and 28.76 (the network's pilot is worth -0.07, +0.75
#: and +1.56 dB there) and six 27.54, 29.23 and 30.41 (the network then counts for little or less than nothing);
#: a pilot from non-local means does better than the network's after any number of passes (docs/benchmarks.md).
#: Three passes keep the network's part and a 512x512 colour photo within 5 minutes.
FAST_DENOISE_PASSES = 3

#: Share of the Wiener mixture in ``fast``'s output, the rest the last collaborative pass's: the passes gain on
#: textured photos and lose on smooth ones (0.33 dB on a 256x256 crop of F16 after a full-length fit), and the
#: average errs less than either. Chosen on 256x256 centre crops of every 6th CBSD68 tuning photo by name (12:
#: 101085 to 33039) at sigma 25, each after the default fit, over 1 to 4 passes and shares 0 to 0.75
#: (``bench/studies/stage_choice.py --data ../shared/data --every 6``, then ``--summary``; rows in
#: ``bench/results/stage_choice.json``): with three passes a share of 0, 0.25, 0.4 and 0.5 gives a mean of
#: 29.126, 29.149, 29.137 and 29.117 dB, the largest shortfall from each photo's best 0.077, 0.045, 0.096 and
#: 0.143 dB (four passes at 0.25: 29.159 for a fourth pass's time). Asking SURE which output to keep did not
#: work: with each pilot held fixed its risks came out negative. Those fits all ran to the noise level; a fit the
#: pixel budget cuts short is a weaker pilot, and there the share only costs: on whole photos 101085, 101087 and
#: 102061 (1103 steps; ``stage_choice.py --data ../shared/data --whole 101085 101087 102061``) three passes give
#: 26.40, 29.19 and 30.33 dB alone and 26.16, 29.16 and 30.19 with a share of 0.25. So the share applies only
#: after a fit that stopped at the noise level (:func:`deepprior.engine.wiener_stage`).
FAST_MIXTURE_SHARE = 0.25

#: Steps of ``fast-camera``, the recipe for a camera's JPEG noise (:class:`deepprior.noise.CameraNoise`): the
#: fit runs this long (no discrepancy stop: the noise has no level the residual could be compared with), then the
#: denoising stage filters at :data:`deepprior.noise.CAMERA_LEVEL` and keeps ``CAMERA_MIXTURE_SHARE`` of the
#: Wiener mixture. Chosen on PolyU tuning pairs, 256x256 centre crops cut as ``bench/real_noise.py`` cuts its
#: own (every 8th pair by name, none of those it reports; 6 pairs, chair_14 to GO_11: ``python
#: bench/studies/real_noise_recipe.py --data ../shared/data --step 8``, then ``--summary``; rows in
#: ``bench/results/real_noise_recipe.json``). Mean PSNR against the mean image (noisy 37.70): the fit alone gives
#: 36.50, 38.70, 39.47 and 39.74 dB after 300, 600, 1000 and 1500 steps; then the stage at a white level of 16 of
#: 255 with half the mixture 40.13, 40.30, 40.35 and **40.39**; the stage from the noisy image alone (no network)
#: 40.30 at best (level 20); levels 8, 12, 20 and 25 after 1500 steps 40.19, 40.35, 40.35 and 40.23. CBM3D on the
#: same crops: 40.37 at 16, 40.44 at each pair's best of 8 to 25 (``real_noise_probe.json``). Variants of the stage
#: moved the mean by 0.01 dB or less (``bench/studies/camera_stage.py --data ../shared/data --step 8``, the same 6
#: pairs, ``bench/results/camera_stage.json``): the chroma planes at 0.5 to 1.5 times the level, four passes
#: instead of three, a share of 0.25 or 0.75, a pilot averaged with the stage's result from the noisy image alone.
#: 1500 steps take about 95 s at 256x256 here; a larger photo gets fewer within ``FAST_PIXEL_STEPS``.
CAMERA_STEPS = 1500

#: Share of the Wiener mixture in ``fast-camera``'s output (see ``CAMERA_STEPS``): 0.5 gives 40.39 dB on the
#: tuning pairs after 1500 steps, 0 gives 40.26 (``real_noise_recipe.py``), 0.25 and 0.75 within 0.01 of 0.5
#: (``camera_stage.py``).
CAMERA_MIXTURE_SHARE = 0.5

#: The fewest steps a pixel budget leaves a fit (a 2048x2048 image still gets a usable pilot).
MIN_BUDGET_STEPS = 300

#: The narrow generator of the fast recipes: the paper's 5-scale skip network with 16, 32 and 64 channels at
#: the three finest scales instead of 128 (the cost of a step is mostly there), 4-channel skips, zero padding.
FAST_SKIP: Mapping[str, Any] = MappingProxyType(
    {
        "channels_down": (16, 32, 64, 128, 128),
        "channels_up": (16, 32, 64, 128, 128),
        "channels_skip": (4,) * 5,
        "upsample_mode": "bilinear",
        "pad": "zero",
    }
)

#: Steps of ``fast-superres``, chosen on the tuning photos (CBSD68 101085 and 101087, 128x128 centre crops,
#: x4), mean luma PSNR with the data projection (``bench/studies/tune_probe.py --task superres --scale 4 --crop
#: 128 --images 2 --preset fast --changes '{"reg_noise_std": 0.03, "refine": null}' --iterations 2000``; the
#: paper's recipe with ``--preset superres``): Lanczos 24.45; the paper's recipe 24.68 after its 2000 steps
#: (24.76 projected), 24.47 after 900 (24.62); the narrow network 24.69 after 900 steps, 24.77 after 1500 and 24.81
#: after 2000, each step 3.8x cheaper. 900 matches the paper's result and keeps a x4 upscale to 512x512 within
#: about 5 minutes on a 2-core CPU. Twice the channels at the fine scales gain 0.1 dB at 900 steps for 1.4x
#: the cost of a step; a learning rate of 0.02 loses 0.1 dB.
FAST_SUPERRES_STEPS = 900

#: Steps of ``fast-superres-x8``, chosen the same way at x8 (256x256 centre crops of CBSD68 101085 and 101087,
#: ``--scale 8 --crop 256 --changes '{"reg_noise_std": 0.05, "refine": null}'``, the paper's x8 input noise):
#: Lanczos 23.03; with the data projection 23.33 after 400 steps, 23.41 after 700 to 1000, 23.42 at most.
FAST_SUPERRES_X8_STEPS = 1000

#: Steps of ``fast-inpaint``, chosen on grey 128x128 centre crops of CBSD68 101085 and 101087 with half the
#: pixels dropped (``bench/studies/tune_probe.py --task inpaint --grey --crop 128 --images 2 --preset fast
#: --changes '{"reg_noise_std": 0.03, "refine": null}' --iterations 2000``): with the known pixels put back,
#: 26.54 dB after 600 steps, 27.18 after 1000, 27.59 after 2000 and still rising (biharmonic 27.57); on a
#: 256x256 crop of 101085, 27.73 after 3000 (biharmonic 27.75). Measured the same way and not better: twice the
#: channels at the fine scales (27.68 after 2000 steps, each 1.3x dearer), no input noise (the fit peaks at 26.46
#: after 300 steps, then overfits the gaps), the paper's network at lr 0.01 (25.97 raw after 1000 steps on
#: 101085, each 3x dearer), and the normalised-convolution fill as network input (stays at the fill's 26.5).
#: On these textured photos the fit only draws level with biharmonic inpainting; more is still to be found.
#: 256x256 crops of 101085 and 101087, 3000 steps: 27.73 and 28.51 (biharmonic 27.75, 28.76), so the fit's
#: 28.12 mean stays under biharmonic's 28.26; twice the fine-scale channels gives 27.80 on 101085 for 1.7x
#: the time. Averaged with biharmonic (below), the two crops give 28.42 after 2000 steps, 28.51 after 2500 and
#: 28.56 after 3000: 2500 keeps a 128x128 photo under 2 minutes for 0.05 dB.
FAST_INPAINT_STEPS = 2500

#: Weight of biharmonic inpainting in the average that ``fast-inpaint`` projects onto the known pixels. Their
#: errors differ enough that the average beats both: on the 256x256 grey crops of CBSD68 101085 and 101087
#: (``bench/studies/classical_mix.py --data ../shared/data --images 101085,101087 --crop 256 --steps 3000``)
#: weights 0, 0.2, 0.35 and 0.5 give 28.12, 28.38, 28.50 and 28.56 dB after 3000 steps (biharmonic 28.26).
FAST_INPAINT_CLASSICAL_WEIGHT = 0.5

#: Noise levels of ``fast-inpaint``'s collaborative passes after the projection (six, geometric from 20 to 3 grey
#: levels), run on the fit and on biharmonic inpainting apart. Chosen on the 256x256 grey crop of CBSD68 101085
#: with half the pixels dropped (``bench/studies/inpaint_passes.py --data ../shared/data --images 101085 --crop
#: 256``, rows in ``bench/results/inpaint_passes.json``), then on the average of the two: from the 2500-step fit
#: averaged with biharmonic (28.07 dB; fit alone 27.64, biharmonic 27.75), 3 passes from 10 to 3 levels give
#: 28.22, 4 from 15 28.25, these six 28.26, 10 from 30 to 2 28.21. The same six passes from biharmonic alone give
#: 28.19, from the fit alone 28.17.
FAST_INPAINT_LEVELS = tuple(round(20 / 255 * (3 / 20) ** (i / 5), 6) for i in range(6))

#: Levels of the passes over the average of the fit and biharmonic inpainting, each refined apart by
#: ``FAST_INPAINT_LEVELS`` (three, geometric from 6 to 2 grey levels). Chosen on 256x256 grey crops of CBSD68
#: 101085, 101087 and 102061 with half the pixels dropped, all stages scored on one 2500-step fit per photo
#: (``bench/studies/inpaint_post.py --data ../shared/data --images 101085,101087,102061 --crop 256``, rows in
#: ``bench/results/inpaint_post.json``): averaging first, then six passes (the recipe before) 28.26, 29.49 and
#: 28.11 dB; refined apart, then averaged 28.26, 29.49, 28.08; then these three passes 28.30, 29.62, 28.18 (+0.08
#: on the mean, better on each photo); two passes from 4 gain less (28.66 mean), six more from 20 lose on 101085.
#: Worth nothing measurable there (within 0.03 dB of the recipe before on the mean): biharmonic weights 0.35 and
#: 0.65, groups of 32 patches, a search of 24 pixels, a stride of 2, 6-pixel patches, eight passes from 25 to 2.
FAST_INPAINT_FINAL_LEVELS = tuple(round(6 / 255 * (2 / 6) ** (i / 2), 6) for i in range(3))

#: Above this many values (pixels times colour planes) the collaborative passes are skipped: one pass costs
#: about 30 s per million values here (six passes on a 2048x2048 colour image would take over half an hour).
COLLABORATIVE_MAX_PIXELS = 1024 * 1024

#: The classical stages a preset may add after its fit.
REFINEMENTS = (None, "wiener", "project")

#: Noise (0-255 scale) from which the default denoising recipe is the paper's strong-noise one.
STRONG_NOISE = 40.0


def default_denoise_preset(sigma: float) -> str:
    """The preset a denoising run uses when none is named, for noise ``sigma`` (0-255 scale): ``fast``,
    or the paper's ``denoise-50`` for strong noise, where the light input noise of ``fast`` is not measured."""
    return "denoise-50" if sigma >= STRONG_NOISE else "fast"


@dataclass(frozen=True)
class Preset:
    """A recipe: generator, network input and optimisation settings.

    Attributes
    ----------
    name : the name used on the command line.
    task : the family of tasks it is meant for; a registered task (:mod:`deepprior.tasks`) names the
        families whose recipes suit it in :attr:`Task.presets`.
    summary : one line on what it is for.
    reproduces : the experiment of the paper it reproduces.
    net, net_options : generator kind and builder options
        (see :func:`deepprior.nets.build_net`).
    input_kind : ``noise`` (uniform in ``[0, input_scale)``), ``meshgrid``,
        ``image`` (a guidance image, e.g. the flash photograph),
        ``measurement`` (the corrupted image itself) or ``estimate`` (the
        operator's quick classical estimate: a fill of the missing pixels,
        an interpolation of a low-resolution image).
    input_channels : channels of a noise input.
    fit : the optimisation recipe.
    keep : fraction of pixels known, for pixel-drop restoration.
    stop_factor : automatic stopping of noisy measurements ends once the
        data term is within this factor of the noise level (1: at it).
    refine : a classical stage after the fit: ``"wiener"`` (empirical
        Wiener filters of the noisy image with the fit as pilot, mixed by
        SURE, see :func:`deepprior.refine.wiener_mix`; denoising only, it
        needs the noise level), ``"project"`` (the output moved the least
        that makes it explain a noiseless measurement exactly, see
        :func:`deepprior.consistency.project_to_data`) or ``None``. The
        paper's presets have none.
    classical_weight : with the ``"project"`` stage, the weight of the
        operator's classical reconstruction (biharmonic inpainting for a
        mask, :meth:`~deepprior.operators.Operator.classical`) in an average
        with the fit, each projected and refined by ``collaborative_levels``
        first; 0 keeps the fit alone.
    collaborative_levels : with the ``"project"`` stage, the noise levels
        ([0, 1] scale) of the passes that follow the projection: each filters
        the estimate by itself with collaborative Wiener filtering and
        projects it again (:func:`deepprior.consistency.collaborative_projection`);
        empty: none. Skipped above :data:`COLLABORATIVE_MAX_PIXELS` values.
    collaborative_final_levels : passes as ``collaborative_levels``, over
        the average with the classical reconstruction
        (:func:`deepprior.engine.projection_stage`).
    collaborative_passes : with the ``"wiener"`` stage, how many passes of
        collaborative Wiener filtering follow the Wiener mixture, each piloted
        by the one before (:func:`deepprior.engine.wiener_stage`); at least 1.
    mixture_share : with the ``"wiener"`` stage, the share of the Wiener
        mixture in the stage's output after a fit that stopped at the noise
        level, the rest the last collaborative pass's (0: the last pass alone,
        as after any other fit).
    pixel_steps : when no step count is asked for, the most steps times
        pixels a fit may spend (:meth:`for_size`), so that a large photo
        costs a bounded time; ``None``: the step count alone.
    """

    name: str
    task: str
    summary: str
    reproduces: str
    net: str = "skip"
    net_options: Mapping[str, Any] = field(default_factory=lambda: PAPER_SKIP)
    input_kind: str = "noise"
    input_channels: int = 32
    input_scale: float = 0.1
    fit: FitConfig = FitConfig()
    keep: float | None = None
    stop_factor: float = 1.0
    refine: str | None = None
    classical_weight: float = 0.0
    collaborative_levels: tuple[float, ...] = ()
    collaborative_final_levels: tuple[float, ...] = ()
    collaborative_passes: int = 1
    mixture_share: float = 0.0
    pixel_steps: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.classical_weight < 1.0:
            raise ValueError(f"classical_weight must be in [0, 1), got {self.classical_weight}")
        for levels in (self.collaborative_levels, self.collaborative_final_levels):
            if levels and (self.refine != "project" or not all(v > 0 for v in levels)):
                raise ValueError(f"collaborative levels need the 'project' stage and levels > 0, got {self.refine!r} "
                                 f"and {levels}")
        if not 1 <= self.collaborative_passes <= 20:
            raise ValueError(f"collaborative_passes must be in [1, 20], got {self.collaborative_passes}")
        if not 0.0 <= self.mixture_share < 1.0:
            raise ValueError(f"mixture_share must be in [0, 1), got {self.mixture_share}")
        if self.pixel_steps is not None and not self.pixel_steps > 0:
            raise ValueError(f"pixel_steps must be > 0, got {self.pixel_steps}")
        if not 0.5 <= self.stop_factor <= 2.0:
            raise ValueError(f"stop_factor must be in [0.5, 2], got {self.stop_factor}")
        if self.refine not in REFINEMENTS:
            raise ValueError(f"unknown refinement {self.refine!r} (use {', '.join(map(str, REFINEMENTS))})")

    def for_size(self, image_size: tuple[int, int]) -> Preset:
        """The recipe for an image of ``image_size`` when no step count was asked for: at most
        :attr:`pixel_steps` divided by its pixel count, and never under :data:`MIN_BUDGET_STEPS`."""
        if self.pixel_steps is None:
            return self
        steps = max(MIN_BUDGET_STEPS, int(self.pixel_steps / (image_size[0] * image_size[1])))
        return self.with_iterations(min(self.fit.iterations, steps))

    def with_iterations(self, iterations: int | None) -> Preset:
        """The same recipe with another iteration budget (``None`` keeps it)."""
        if iterations is None:
            return self
        return replace(self, fit=replace(self.fit, iterations=iterations))


#: The default super-resolution recipe; its x8 variant differs only in input noise and steps.
_FAST_SUPERRES = Preset(
    name="fast-superres",
    task="superres",
    summary="The default for x2 to x4: the narrow network, debiased average, 900 steps, then the output made to "
    "explain the low-resolution image exactly (back-projection).",
    reproduces="no paper experiment; chosen by measurement on CBSD68 (see FAST_SUPERRES_STEPS)",
    net_options=FAST_SKIP,
    input_channels=8,
    fit=FitConfig(iterations=FAST_SUPERRES_STEPS, lr=0.01, reg_noise_std=0.03, ema_weight=0.99, ema_debias=True,
                  backtrack_db=5.0),
    refine="project",
)

#: The default denoising recipe; ``fast-camera`` differs in its fit length and stage.
_FAST = Preset(
    name="fast",
    task="denoise",
    summary="The default for noise below sigma 40: the paper's layers narrowed at the fine scales, light input "
    "noise, debiased average, automatic stop within a time budget, then Wiener filtering (windows with the "
    "fit as pilot, then three passes over stacks of similar patches, averaged with the windows' result).",
    reproduces="no paper experiment; chosen by measurement on the Set9 crops (bench/studies/recipe_probe.py)",
    net_options=FAST_SKIP,
    input_channels=8,
    fit=FitConfig(iterations=3000, lr=0.01, reg_noise_std=FAST_INPUT_NOISE, ema_weight=0.99, ema_debias=True,
                  backtrack_db=5.0),
    stop_factor=1.02,
    refine="wiener",
    collaborative_passes=FAST_DENOISE_PASSES,
    mixture_share=FAST_MIXTURE_SHARE,
    pixel_steps=FAST_PIXEL_STEPS,
)

_PRESETS = [
    Preset(
        name="denoise",
        task="denoise",
        summary="Gaussian-type noise up to sigma 25 (of 255): the paper's network, output averaging, backtracking.",
        reproduces="the denoising experiments: F16 figure and the CBM3D colour set table, sigma = 25",
        fit=FitConfig(iterations=3000, lr=0.01, reg_noise_std=1 / 30, ema_weight=0.99, backtrack_db=5.0),
    ),
    Preset(
        name="denoise-50",
        task="denoise",
        summary="Strong noise (sigma around 50): as 'denoise' with a larger input perturbation (1/20).",
        reproduces="the denoising table at sigma = 50",
        fit=FitConfig(iterations=3000, lr=0.01, reg_noise_std=1 / 20, ema_weight=0.99, backtrack_db=5.0),
    ),
    _FAST,
    replace(
        _FAST,
        name="fast-camera",
        summary="The default for a camera's JPEG noise (detected, or --noise camera): 'fast' run a fixed "
        f"{CAMERA_STEPS} steps (within its time budget), then the same Wiener stage at the camera level, half "
        "the Wiener mixture kept.",
        reproduces="no paper experiment; chosen on PolyU tuning pairs (see CAMERA_STEPS)",
        fit=replace(_FAST.fit, iterations=CAMERA_STEPS),
        mixture_share=CAMERA_MIXTURE_SHARE,
    ),
    Preset(
        name="denoise-sure",
        task="denoise",
        summary="Gaussian noise of known or estimated sigma: SURE loss, the noisy image as network input.",
        reproduces="no paper experiment; DIP-SURE of Jo, Chun and Choi (ICCV 2021) on the paper's network",
        input_kind="measurement",
        input_channels=3,
        fit=FitConfig(iterations=3000, lr=0.01, reg_noise_std=0.0, ema_weight=0.99, ema_debias=True, loss="sure"),
    ),
    Preset(
        name="dejpeg",
        task="dejpeg",
        summary="JPEG blocking and ringing with no clean reference: a small 3-channel-input network.",
        reproduces="the blind JPEG-artifact removal figure (snail)",
        net_options={
            "channels_down": (8, 16, 32, 64, 128),
            "channels_up": (8, 16, 32, 64, 128),
            "channels_skip": (0, 0, 0, 4, 4),
            "upsample_mode": "bilinear",
            "pad": "reflection",
        },
        input_channels=3,
        fit=FitConfig(iterations=2400, lr=0.01, reg_noise_std=1 / 30, ema_weight=0.99, backtrack_db=5.0),
    ),
    Preset(
        name="superres",
        task="superres",
        summary="Super-resolution x4 (also used for x2, x3): Lanczos-2 downsampling model, 2000 steps.",
        reproduces="the super-resolution figures and the Set5 / Set14 x4 table",
        fit=FitConfig(iterations=2000, lr=0.01, reg_noise_std=0.03),
    ),
    Preset(
        name="superres-x8",
        task="superres",
        summary="Super-resolution x8: as 'superres' with 4000 steps and input noise 0.05.",
        reproduces="the Set5 / Set14 x8 table",
        fit=FitConfig(iterations=4000, lr=0.01, reg_noise_std=0.05),
    ),
    _FAST_SUPERRES,
    replace(
        _FAST_SUPERRES,
        name="fast-superres-x8",
        summary="The default for x8 and more: as 'fast-superres' with the paper's x8 input noise (0.05), 1000 steps.",
        reproduces="no paper experiment; chosen by measurement on CBSD68 (see FAST_SUPERRES_X8_STEPS)",
        fit=replace(_FAST_SUPERRES.fit, iterations=FAST_SUPERRES_X8_STEPS, reg_noise_std=0.05),
    ),
    replace(  # the super-resolution recipe's network and fit, its own step count and the biharmonic average
        _FAST_SUPERRES,
        name="fast-inpaint",
        task="inpaint",
        summary="The default for scattered missing pixels and thin damage (text, scratches): the narrow network, "
        "debiased average; it and biharmonic inpainting each given the known pixels back exactly and refined by six "
        "collaborative filtering passes that keep them, averaged, then three more passes.",
        reproduces="no paper experiment; chosen by measurement on CBSD68 (see FAST_INPAINT_STEPS)",
        fit=replace(_FAST_SUPERRES.fit, iterations=FAST_INPAINT_STEPS),
        classical_weight=FAST_INPAINT_CLASSICAL_WEIGHT,
        collaborative_levels=FAST_INPAINT_LEVELS,
        collaborative_final_levels=FAST_INPAINT_FINAL_LEVELS,
    ),
    Preset(
        name="inpaint-text",
        task="inpaint",
        summary="Thin damage (text, scratches) over a photo: skip network with wide 128-channel skips.",
        reproduces="the text inpainting figure (kate)",
        net_options={
            "channels_down": (128,) * 5,
            "channels_up": (128,) * 5,
            "channels_skip": (128,) * 5,
            "upsample_mode": "nearest",
            "pad": "reflection",
        },
        fit=FitConfig(iterations=6000, lr=0.01, reg_noise_std=0.03),
    ),
    Preset(
        name="inpaint-hole",
        task="inpaint",
        summary="Large holes: no skip connections and a coordinate-grid input.",
        reproduces="the large-hole inpainting figure (vase)",
        net_options={
            "channels_down": (128,) * 5,
            "channels_up": (128,) * 5,
            "channels_skip": (0,) * 5,
            "upsample_mode": "nearest",
            "pad": "reflection",
        },
        input_kind="meshgrid",
        input_channels=2,
        fit=FitConfig(iterations=5000, lr=0.01, reg_noise_std=0.03),
    ),
    Preset(
        name="inpaint-deep",
        task="inpaint",
        summary="Large irregular regions: a 6-scale network without skips, 5x5 down filters, 1-channel input.",
        reproduces="the inpainting architecture comparison (library), depth-6 skip-free network",
        net_options={
            "channels_down": (16, 32, 64, 128, 128, 128),
            "channels_up": (16, 32, 64, 128, 128, 128),
            "channels_skip": (0,) * 6,
            "filter_size_down": 5,
            "filter_size_up": 3,
            "upsample_mode": "nearest",
            "need_1x1_up": False,
            "pad": "reflection",
        },
        input_channels=1,
        fit=FitConfig(iterations=3000, lr=0.01, reg_noise_std=0.0),
    ),
    Preset(
        name="restore",
        task="restore",
        summary="Pixel-drop restoration, half the pixels missing at random: slow, careful fit (lr 0.001).",
        reproduces="the 50 % missing-pixel restoration figure (barbara) and the inpainting table",
        fit=FitConfig(iterations=11000, lr=0.001, reg_noise_std=0.03, backtrack_db=5.0),
        keep=0.5,
    ),
    Preset(
        name="restore-sparse",
        task="restore",
        summary="Only 2 % of pixels known: skip-free network with average-pool downsampling, 1000 steps.",
        reproduces="the 98 % missing-pixel restoration of the supplementary material (kate)",
        net_options={
            "channels_down": (16, 32, 64, 128, 128),
            "channels_up": (16, 32, 64, 128, 128),
            "channels_skip": (0,) * 5,
            "upsample_mode": "bilinear",
            "downsample_mode": "avg",
            "pad": "reflection",
        },
        fit=FitConfig(iterations=1000, lr=0.01, reg_noise_std=0.0),
        keep=0.02,
    ),
    Preset(
        name="deblur",
        task="deblur",
        summary="Known blur kernel (not in the paper): the paper's network through the blur, with averaging.",
        reproduces="no paper experiment; the denoising recipe applied through a blur operator",
        fit=FitConfig(iterations=3000, lr=0.01, reg_noise_std=0.03, ema_weight=0.99, ema_debias=True),
    ),
    Preset(
        name="flash",
        task="flash",
        summary="Flash / no-flash: the flash photo is the network input, the no-flash photo the target.",
        reproduces="the flash / no-flash reconstruction figure (cave)",
        net_options={
            "channels_down": (128,) * 5,
            "channels_up": (128,) * 5,
            "channels_skip": (4,) * 5,
            "upsample_mode": ("nearest", "nearest", "bilinear", "bilinear", "bilinear"),
            "pad": "reflection",
        },
        input_kind="image",
        input_channels=3,
        fit=FitConfig(iterations=600, lr=0.1, reg_noise_std=0.0),
    ),
]

#: All presets by name.
PRESETS: Mapping[str, Preset] = MappingProxyType({p.name: p for p in _PRESETS})


def get_preset(name: str) -> Preset:
    """The preset called ``name``, or read from ``name`` if it is a ``.json``
    file (see :func:`load_preset`); a ``ValueError`` listing the choices otherwise.

    >>> get_preset("denoise").fit.iterations
    3000
    """
    if name.lower().endswith(".json"):
        return load_preset(name)
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)}, or a .json recipe file)") from None


_PRESET_KEYS = {"name", "base", "task", "summary", "reproduces", "net", "net_options", "input_kind", "input_channels",
                "input_scale", "fit", "keep", "stop_factor", "refine"}


def _check_types(path: str, prefix: str, changes: dict[str, Any], cls: type) -> None:
    """Refuse a JSON value whose type the field cannot take (``"ten"`` for a number of iterations, say)."""
    fields = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    for key, value in changes.items():
        kind = fields.get(key, "")
        if value is None and "None" in kind:
            continue
        ok = {"bool": isinstance(value, bool), "int": isinstance(value, int) and not isinstance(value, bool),
              "float": isinstance(value, (int, float)) and not isinstance(value, bool),
              "str": isinstance(value, str)}
        wanted = [name for name in ("bool", "int", "float", "str") if re.search(rf"\b{name}\b", kind)]
        if wanted and not any(ok[name] for name in wanted):
            shown = " or ".join({"bool": "true or false", "int": "a whole number", "float": "a number",
                                 "str": "a string"}[name] for name in wanted)
            raise ValueError(f"preset file '{path}': '{prefix}{key}' must be {shown}, got {json.dumps(value)}")


def load_preset(path: str) -> Preset:
    """Read a recipe from a JSON file: a built-in preset (``"base"``, default
    ``denoise``) with the fields given replaced; ``fit`` and ``net_options``
    are merged key by key. For example::

        {"base": "denoise", "name": "small",
         "net_options": {"channels_down": [32, 32, 32], "channels_up": [32, 32, 32], "channels_skip": [4, 4, 4]},
         "fit": {"iterations": 500, "ema_debias": true}}
    """
    try:
        with open(path, encoding="utf-8") as handle:
            spec = json.load(handle)
    except FileNotFoundError:
        raise ValueError(f"preset file '{path}' does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read preset file '{path}': {exc}") from None
    if not isinstance(spec, dict):
        raise ValueError(f"preset file '{path}' must hold a JSON object")
    unknown = set(spec) - _PRESET_KEYS
    if unknown:
        raise ValueError(f"preset file '{path}' has unknown keys: {', '.join(sorted(unknown))}")
    base_name = spec.pop("base", "denoise")
    if not isinstance(base_name, str):
        raise ValueError(f"preset file '{path}': 'base' must be a preset name")
    base = get_preset(base_name)
    fit_changes = spec.pop("fit", {})
    net_changes = spec.pop("net_options", {})
    if not isinstance(fit_changes, dict) or not isinstance(net_changes, dict):
        raise ValueError(f"preset file '{path}': 'fit' and 'net_options' must be objects")
    _check_types(path, "", spec, Preset)
    _check_types(path, "fit.", fit_changes, FitConfig)
    try:
        fit = replace(base.fit, **fit_changes)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"preset file '{path}': {exc}") from None
    net_options = {**base.net_options, **net_changes}
    if "net" in spec and spec["net"] != base.net and not net_changes:
        net_options = {}
    spec.setdefault("name", str(path))
    try:
        return replace(base, **spec, fit=fit, net_options=MappingProxyType(net_options))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"preset file '{path}': {exc}") from None
