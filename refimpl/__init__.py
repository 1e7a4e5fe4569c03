"""Reference implementations of perturbation methods, written once against the array API.

This package imports only the standard library and ``backends`` (DESIGN.md, Layers).
"""
