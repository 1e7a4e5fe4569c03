"""Reference implementations of perturbation methods, written once against the array API.

The algorithm packages import only the standard library and ``backends``; the torch front
ends are in ``refimpl.torch`` (docs/design.md, Layers).
"""
