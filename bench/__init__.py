"""Benchmarks, load and soak runs for ECS and statusbridge (not shipped in the wheel)."""
