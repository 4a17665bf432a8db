"""Samples executions whose latency is an outlier for their task (a loopai sampler plugin)."""

from loopai_anomaly_sampler.plugin import AnomalySampler, __version__

__all__ = ["AnomalySampler", "__version__"]
