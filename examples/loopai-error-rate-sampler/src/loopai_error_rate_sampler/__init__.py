"""Samples every execution of a task while its error rate is above a threshold."""

from loopai_error_rate_sampler.plugin import ErrorRateSampler, __version__

__all__ = ["ErrorRateSampler", "__version__"]
