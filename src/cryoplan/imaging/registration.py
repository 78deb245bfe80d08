"""Image registration of a pre-procedural image onto an intraprocedural one (SimpleITK): rigid, then an
optional B-spline, and masks carried through the result.

SimpleITK images and `Volume` both live in LPS millimetres; SimpleITK indexes its arrays ``[k, j, i]``,
converted in `to_sitk` and `from_sitk` only.
"""

# SimpleITK's SWIG-generated bindings carry no annotations, so every call into them is an untyped call.
# mypy: disallow-untyped-calls=False

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk
from numpy.typing import DTypeLike, NDArray

from cryoplan.imaging.volume import Volume

# Below this normalised correlation between the registered pre-procedural image and the
# intraprocedural one the registration is not trusted (the ice ball changes only a small region).
MIN_REGISTERED_CORRELATION = 0.5


def to_sitk(volume: Volume, dtype: DTypeLike = np.float32) -> sitk.Image:
    """A Volume as a SimpleITK image (both live in LPS millimetres; SimpleITK indexes arrays [k, j, i])."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(volume.array, dtype=dtype).transpose(2, 1, 0)))
    spacing = volume.spacing_mm
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(v) for v in volume.affine[:3, 3]))
    image.SetDirection(tuple(float(v) for v in (volume.affine[:3, :3] / spacing).ravel()))
    return image


def from_sitk(image: sitk.Image, like: Volume) -> NDArray[Any]:
    """The array of a SimpleITK image resampled on `like`'s grid, indexed [i, j, k]."""
    array: NDArray[Any] = sitk.GetArrayFromImage(image)  # of the image's own pixel type
    return array.transpose(2, 1, 0)


@dataclass
class Registration:
    """Result of registering the pre-procedural image onto the intraprocedural one.

    `transform` maps intraprocedural LPS points to pre-procedural LPS points (SimpleITK's convention for
    resampling the moving image onto the fixed grid).
    """

    transform: sitk.Transform
    rigid: sitk.Transform
    method: str
    metric: str
    metric_value: float
    correlation: float
    converged: bool
    stop_condition: str

    def to_dict(self) -> dict[str, str | float | bool]:
        return {
            "method": self.method,
            "metric": self.metric,
            "metric_value": round(self.metric_value, 4),
            "correlation": round(self.correlation, 3),
            "converged": self.converged,
            "stop_condition": self.stop_condition,
        }

    def pre_to_intra(self, points_lps: np.ndarray) -> np.ndarray:
        """Map pre-procedural LPS points (n, 3) into the intraprocedural frame.

        The rigid part is inverted exactly; a B-spline has no closed-form inverse, so T(x) = p is then
        solved by fixed-point iteration x ← x + (p − T(x)) from the rigid answer.
        """
        inverse = self.rigid.GetInverse()
        mapped = []
        for point in np.atleast_2d(points_lps):
            x = np.array(inverse.TransformPoint(tuple(float(v) for v in point)))
            for _ in range(20):
                x = x + (point - np.array(self.transform.TransformPoint(tuple(float(v) for v in x))))
            mapped.append(x)
        return np.array(mapped)


def _sampling_seed(seed: int) -> int:
    """The metric sampler's seed: SimpleITK reads 0 as "seed from the wall clock", so 0 must not reach it."""
    return int(seed) % (2**31 - 1) + 1


def register(
    pre_image: Volume,
    intra_image: Volume,
    *,
    deformable: bool = False,
    seed: int = 0,
    max_iterations: int = 200,
    exclude: np.ndarray | None = None,
) -> Registration:
    """Register the pre-procedural image (moving) onto the intraprocedural one (fixed).

    Rigid (Euler 3-D) registration by Mattes mutual information (Mattes et al., IEEE TMI 2003;22:120)
    with a regular-step gradient descent over three resolution levels, initialised on the image centres;
    then, when `deformable`, a B-spline transform (Rueckert et al., IEEE TMI 1999;18:712) optimised by
    L-BFGS-B on top of the rigid one. The registration counts as converged when the optimiser stopped
    on a small step rather than on its iteration limit and the registered images correlate (normalised
    cross-correlation ≥ 0.5 over their overlap).

    Parameters
    ----------
    seed : int
        Seed of the metric's random sampling.
    exclude : numpy.ndarray of bool, optional
        Intraprocedural voxels left out of the B-spline's metric: the ice ball and its surroundings have
        no counterpart in the pre-procedural image, and matching them would warp the tumour.
    """
    fixed = to_sitk(intra_image)
    moving = to_sitk(pre_image)
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.25, _sampling_seed(seed))
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0,
        minStep=1e-3,
        numberOfIterations=max_iterations,
        relaxationFactor=0.6,
        gradientMagnitudeTolerance=1e-6,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([4, 2, 1])
    method.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    initial = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.GEOMETRY
    )
    method.SetInitialTransform(initial, inPlace=False)
    rigid = method.Execute(fixed, moving)
    stop = method.GetOptimizerStopConditionDescription()
    stopped_on_step = "Maximum number of iterations" not in stop
    metric_value = method.GetMetricValue()
    transform: sitk.Transform = rigid
    name = "rigid (Euler 3-D, Mattes mutual information)"
    if deformable:
        bspline = sitk.BSplineTransformInitializer(fixed, [4, 4, 4], order=3)
        method_b = sitk.ImageRegistrationMethod()
        method_b.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
        method_b.SetMetricSamplingStrategy(method_b.RANDOM)
        method_b.SetMetricSamplingPercentage(0.05, _sampling_seed(seed))
        method_b.SetInterpolator(sitk.sitkLinear)
        method_b.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-4, numberOfIterations=20)
        # Coarse levels only: the B-spline corrects organ-scale deformation, the rigid stage fine alignment.
        method_b.SetShrinkFactorsPerLevel([4, 2])
        method_b.SetSmoothingSigmasPerLevel([2.0, 1.0])
        method_b.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
        if exclude is not None:
            mask = to_sitk(intra_image.with_array((~exclude).astype(np.uint8)), dtype=np.uint8)
            method_b.SetMetricFixedMask(mask)
        method_b.SetMovingInitialTransform(rigid)
        method_b.SetInitialTransform(bspline, inPlace=True)
        method_b.Execute(fixed, moving)
        stop += "; B-spline: " + method_b.GetOptimizerStopConditionDescription()
        metric_value = method_b.GetMetricValue()
        transform = sitk.CompositeTransform([rigid, bspline])
        name = "rigid then B-spline (Mattes mutual information)"
    registered = from_sitk(sitk.Resample(moving, fixed, transform, sitk.sitkLinear, np.nan), intra_image)
    overlap = np.isfinite(registered)
    correlation = 0.0
    if overlap.sum() > 100:
        a = registered[overlap].astype(np.float64)
        b = np.asarray(intra_image.array, dtype=np.float64)[overlap]
        if a.std() > 0 and b.std() > 0:
            correlation = float(np.corrcoef(a, b)[0, 1])
    return Registration(
        transform=transform,
        rigid=rigid,
        method=name,
        metric="mattes_mutual_information",
        metric_value=float(metric_value),
        correlation=correlation,
        converged=bool(stopped_on_step and correlation >= MIN_REGISTERED_CORRELATION),
        stop_condition=stop,
    )


def resample_mask(mask: Volume, onto: Volume, transform: sitk.Transform | None = None) -> np.ndarray:
    """Resample a binary mask through `transform` (identity when None) onto `onto`'s grid.

    Linear interpolation of the 0/1 mask, kept where it reaches 0.5: the boundary moves smoothly with a
    sub-voxel transform, where nearest-neighbour sampling would jump by whole voxels.
    """
    if transform is None:
        transform = sitk.Transform(3, sitk.sitkIdentity)
    moved = sitk.Resample(
        to_sitk(mask.with_array(np.asarray(mask.array) > 0)), to_sitk(onto), transform, sitk.sitkLinear, 0.0
    )
    return from_sitk(moved, onto) >= 0.5


def resample_image(image: Volume, onto: Volume, transform: sitk.Transform | None, fill: float) -> np.ndarray:
    """Resample an image through `transform` (identity when None) onto `onto`'s grid, trilinear, `fill`
    beyond the image."""
    if transform is None:
        transform = sitk.Transform(3, sitk.sitkIdentity)
    moved = sitk.Resample(to_sitk(image), to_sitk(onto), transform, sitk.sitkLinear, float(fill))
    return from_sitk(moved, onto)


def resample_labels(labels: Volume, onto: Volume, transform: sitk.Transform | None = None) -> np.ndarray:
    """Resample a label map through `transform` (identity when None) onto `onto`'s grid, each voxel taking
    the nearest label (labels are names, not values to average); 0 outside the label map."""
    if transform is None:
        transform = sitk.Transform(3, sitk.sitkIdentity)
    array = np.asarray(labels.array)
    moved = sitk.Resample(to_sitk(labels, array.dtype), to_sitk(onto), transform, sitk.sitkNearestNeighbor, 0)
    return from_sitk(moved, onto)
