"""The use cases: plain classes that take ports, one per group of operations (cosmicpython's service layer)."""
