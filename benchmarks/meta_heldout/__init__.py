"""The meta-learning proof on families held out of meta-training (issue #17)."""
