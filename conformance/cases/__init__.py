"""One module per seed document; each registers its cases with ``conformance.case``."""
