"""ClusterBrain: an AIoT platform for clusters of small manufacturers."""

__version__ = "0.1.0"
