"""Degradation detection: streaming per-series baselines, anomaly and recovery events.

``detector.SeriesDetector`` / ``detector.DetectorBank`` are the public surface (the live
collector and ``diag-collector replay`` share them); ``nab_score`` scores detectors on the
Numenta Anomaly Benchmark.
"""
