"""The anomaly service: daily cost per monitored dimension, robust detectors, anomalies topic."""
