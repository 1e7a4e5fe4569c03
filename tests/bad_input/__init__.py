"""The bad-input sweep: one test file per family of public entry points.

Each file gives, per entry point, a valid call and a table of mutations (one argument
replaced by a bad value of one class: wrong type, None, NaN/inf, empty and 0-d arrays, huge
values, other dtypes, numpy integers, arrays of another library or device) and runs it
through :func:`tests.bad_input.harness.sweep`, which asserts the rule of docs/design.md.
"""
