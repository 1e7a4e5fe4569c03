"""Targets (issue 12): the operations interface, NotSupported -> SKIP, companions, the
registry of targets, --target / --plugin selection, the example port, the original columns."""

from __future__ import annotations

import importlib.util
import inspect
import json
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from conformance import Case, NotSupported, Target, exact, register_target, targets
from conformance.runner import main, run_one
from conformance.targets import OPERATIONS, RefimplTarget, builtin_targets

SRC = "synthetic (tests/test_conformance_targets.py)"
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _ball(ctx):
    for impl in ctx.implementations("sample_ball"):
        x = impl.sample_ball("l2", np.zeros((2, 3)), epsilon=2.0, param_ndim=1)
        assert np.all(np.linalg.norm(x, axis=1) < 2.0), impl.label


BALL = Case("syn.ball", SRC, "x", exact(), _ball)


class _Empty(Target):
    pass


class _Radius(Target):
    """Returns points at a given radius: inside the ball (r < 2) or on/outside it."""

    def __init__(self, name: str, r: float) -> None:
        super().__init__(name)
        self.r = r

    def sample_ball(self, kind, x, *, epsilon, param_ndim):
        out = np.zeros_like(x, dtype=np.float32)
        out[..., 0] = self.r
        return out


class _WithCompanion(_Empty):
    def __init__(self, companion: Target) -> None:
        super().__init__("column")
        self.companion = companion

    def implementations(self):
        return [self, self.companion]


def test_an_operation_a_target_lacks_is_skip_naming_target_and_op():
    r = run_one(BALL, _Empty("bare"))
    assert (r.status, r.detail) == ("SKIP", "bare does not provide sample_ball")
    assert issubclass(NotSupported, Exception)


def test_every_operation_of_the_checklist_skips_by_default():
    bare = _Empty("bare")
    for op in OPERATIONS:
        assert callable(getattr(Target, op)) and not bare.supports(op)
        params = inspect.signature(getattr(Target, op)).parameters
        args = [None] * sum(
            p.default is p.empty and p.kind == p.POSITIONAL_OR_KEYWORD for p in params.values()
        )
        kwargs = {n: None for n, p in params.items() if p.kind == p.KEYWORD_ONLY}
        with pytest.raises(NotSupported, match=f"^bare does not provide {op}$"):
            getattr(bare, op)(*args[1:], **kwargs)
    # every public method a case may call is in the checklist
    plumbing = {"unavailable", "prepare", "implementations", "supports", "applies_to"}
    plumbing |= {"asarray", "to_numpy", "assert_native", "not_supported", "label"}
    plumbing |= {"default_label"}
    public = {n for n in vars(Target) if not n.startswith("_") and callable(getattr(Target, n))}
    assert public - plumbing == set(OPERATIONS)


def test_operations_decide_the_status():
    assert run_one(BALL, _Radius("inside", 1.5)).status == "PASS"
    r = run_one(BALL, _Radius("outside", 2.5))
    assert r.status == "FAIL" and "outside" in r.detail


def test_companions_are_checked_in_the_same_cell():
    # the column lacks the op, its companion has it: the companion decides
    assert run_one(BALL, _WithCompanion(_Radius("good", 1.0))).status == "PASS"
    assert run_one(BALL, _WithCompanion(_Radius("bad", 3.0))).status == "FAIL"
    # the torch column checks this project on torch and the torch front end
    labels = [t.label for t in RefimplTarget("torch", "cpu").implementations()]
    assert labels == ["torch", "refimpl.torch"]


def test_default_columns_follow_the_adapters():
    from backends.registry import ADAPTERS

    labels = [t.label for t in builtin_targets()]
    refimpl = [t.name for t in builtin_targets() if isinstance(t, RefimplTarget)]
    assert set(refimpl) == set(ADAPTERS)
    assert "torch:cuda" in labels and "array_api_strict" in labels
    assert labels[-5:] == ["refimpl.jax", "rai_toolbox", "captum", "plenoptic", "optax"]


def test_the_jax_front_end_column_runs_the_optax_cases_when_named(capsys):
    """refimpl.jax: this project (kind refimpl), on the cases of the optax column only,
    opt-in like jax (XLA compiles slowly), needing jax but not optax."""
    from conformance.registry import all_cases
    from conformance.targets import JaxFrontEnd

    front = JaxFrontEnd()
    assert (front.label, front.kind) == ("refimpl.jax", "refimpl")
    cases = all_cases()
    assert [c.id for c in cases if front.applies_to(c)] == [
        c.id for c in cases if "optax" in c.originals
    ]
    has_jax = importlib.util.find_spec("jax") is not None
    assert (front.unavailable() is None) == has_jax
    optax_case = Case("syn.optax", SRC, "x", exact(), _ball, originals=("optax",))
    assert "refimpl.jax" not in _runs_on(capsys, [], [optax_case])[0].split(", ")
    got = _runs_on(capsys, ["--target", "refimpl.jax,optax"], [optax_case])
    assert got == ["refimpl.jax, optax"]
    assert not front.supports("perturbed_defaults") and not front.supports("solve")


def test_register_target_validates():
    with pytest.raises(ValueError, match="taken by a built-in"):
        register_target("numpy", _Empty)
    with pytest.raises(ValueError, match="without commas"):
        register_target("a,b", _Empty)
    with pytest.raises(TypeError, match="callable"):
        register_target("thing", 3)


@pytest.mark.parametrize("name", ["refimpl", "original", "strict", "np", "torch:cpu", " mine"])
def test_register_target_refuses_names_that_cannot_be_selected(monkeypatch, name):
    """Group names and aliases of ``--target``/``--backend`` (and names with surrounding
    spaces) would be accepted but never select the target."""
    monkeypatch.setattr(targets.base, "_FACTORIES", {})
    with pytest.raises(ValueError, match=f"target name {name!r}") as info:
        register_target(name, _Empty)
    assert "refimpl, original" in str(info.value) or "spaces" in str(info.value)


def test_register_target_refuses_a_second_factory_for_a_name(monkeypatch):
    monkeypatch.setattr(targets.base, "_FACTORIES", {})
    register_target("twice", _Empty)
    register_target("twice", _Empty)  # the same factory again: harmless
    with pytest.raises(ValueError, match="'twice' is already registered"):
        register_target("twice", lambda: _Radius("twice", 1.0))


class _Library(_Radius):
    """A port of a documented library's kind, built without a name."""

    kind = "original"

    def __init__(self) -> None:
        super().__init__("", 1.0)


@pytest.mark.parametrize("factory", [_Library, lambda: RefimplTarget("numpy")])
def test_the_registered_name_selects_and_labels_the_target(monkeypatch, capsys, tmp_path, factory):
    monkeypatch.setattr(targets.base, "_FACTORIES", {})
    register_target("mine", factory)
    out = tmp_path / "mine.json"
    assert main(["--target", "numpy,mine", "--json", str(out)], cases=[BALL]) == 0
    assert capsys.readouterr().out.splitlines()[0].split() == ["case", "numpy", "mine"]
    data = json.loads(out.read_text())
    assert [t["label"] for t in data["targets"]] == ["numpy", "mine"]
    assert [r["target"] for r in data["results"]] == ["numpy", "mine"]


def test_an_unavailable_probe_that_raises_during_the_run_is_a_fail_cell():
    """Checked before the run for a plugin target (tests/test_cli.py); should it raise later
    all the same, the cell FAILs with the error instead of ending the run."""

    class Flaky(_Radius):
        def unavailable(self):
            raise RuntimeError("probe broke")

    r = run_one(BALL, Flaky("flaky", 1.0))
    assert r.status == "FAIL" and r.detail.startswith("RuntimeError: probe broke")


def _runs_on(capsys, argv, cases):
    assert main(["--list", *argv], cases=cases) == 0
    out = capsys.readouterr().out
    return [line.split(":", 1)[1].strip() for line in out.splitlines() if "runs on:" in line]


def test_target_selection(capsys):
    both = Case("syn.both", SRC, "x", exact(), _ball, originals=("rai_toolbox", "captum"))
    assert _runs_on(capsys, ["--target", "original"], [both]) == ["rai_toolbox, captum"]
    assert _runs_on(capsys, ["--target", "numpy,torch:cuda"], [both]) == ["numpy, torch:cuda"]
    refimpl = _runs_on(capsys, ["--target", "refimpl"], [both])[0].split(", ")
    assert refimpl == [
        t.label for t in builtin_targets() if t.kind == "refimpl" and t.applies_to(both)
    ]
    # --backend and --target together: the union, in table order
    got = _runs_on(capsys, ["--backend", "numpy", "--target", "captum"], [both])
    assert got == ["numpy, captum"]
    # jax is opt-in: not a default column, but selected by name or by "refimpl"
    default = _runs_on(capsys, [], [both])[0].split(", ")
    assert "jax" in refimpl and "jax" not in default and "numpy" in default
    assert _runs_on(capsys, ["--backend", "jax"], [both]) == ["jax"]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--target", "nonesuch"], ["unknown target 'nonesuch'", "original", "numpy"]),
        (["--target", ","], ["--target", "selects no column"]),
        (["--plugin", "no_such_module_xyz"], ["--plugin", "no_such_module_xyz"]),
        (["--report", "out.txt"], ["--report", ".md or .html"]),
    ],
)
def test_selection_errors_exit_two(capsys, tmp_path, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(argv, cases=[BALL])
    assert info.value.code == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err


#: the example port's documented pattern (examples/my_port): l2 sampler and the additive
#: perturbation from documented deltas conform, the linf sampler is wrong, the rest is missing
EXPECTED_PORT = {
    "000.additive.broadcast.delta": "SKIP",
    "000.additive.broadcast.grad_mean": "ERRATUM",
    "000.additive.broadcast.pert_data": "ERRATUM",
    "000.additive.broadcast.shape": "SKIP",
    "000.additive.elementwise.delta": "SKIP",
    "000.additive.elementwise.grad_sum": "ERRATUM",
    "000.additive.elementwise.pert_data": "ERRATUM",
    "000.init.l1.rows": "SKIP",
    "000.init.l1.whole": "SKIP",
    "000.init.l2.rows": "PASS",
    "000.init.l2.whole": "PASS",
    "000.init.linf.box": "FAIL",
    "001.l1q_frank_wolfe.docstring": "SKIP",
    "002.hard_or": "SKIP",
    "003.smoothgrad.linear_model": "SKIP",
}


def test_the_example_port_runs_through_its_plugin(tmp_path):
    out = tmp_path / "port.json"
    cmd = [
        sys.executable, "-m", "conformance", "--plugin", "examples.my_port.conformance",
        "--target", "my_port", "--case", ",".join(EXPECTED_PORT), "--json", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one FAIL
    assert proc.stdout.rstrip().splitlines()[-1] == (
        "15 cells: 7 ran (2 PASS, 4 ERRATUM, 1 FAIL), 8 skipped (8 not supported by the target)"
    )
    data = json.loads(out.read_text())
    assert [t["label"] for t in data["targets"]] == ["my_port"]
    assert data["targets"][0]["kind"] == "port"
    got = {r["case"]: r["status"] for r in data["results"]}
    assert got == EXPECTED_PORT
    details = {r["case"]: r["detail"] for r in data["results"]}
    assert details["000.init.l1.rows"] == (
        "my_port does not provide sample_ball('l1'): my_port has no l1 sampler"
    )
    assert details["001.l1q_frank_wolfe.docstring"] == "my_port does not provide optimizer_steps"
    assert "FAIL 000.init.linf.box [my_port]" in proc.stdout


def test_a_case_using_the_refimpl_array_api_skips_on_a_port():
    def legacy(ctx):
        ctx.asarray([1.0])

    r = run_one(Case("syn.legacy", SRC, "x", exact(), legacy), _Empty("port"))
    assert r.status == "SKIP" and r.detail.startswith("port does not provide a refimpl array")


ORIGINAL_CASES = [
    ("rai_toolbox", "000.init.l2.rows,001.top_q.docstring,001.l1q_frank_wolfe.docstring"),
    ("captum", "003.smoothgrad.linear_model"),
    ("optax", "002.hard_or,002.defaults"),
]


@pytest.mark.parametrize("column, pattern", ORIGINAL_CASES)
def test_original_columns_run_when_installed(capsys, column, pattern):
    if importlib.util.find_spec(column) is None:
        pytest.skip(f"{column} is not installed (the bench extra)")
    rc = main(["--target", column, "--case", pattern])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.splitlines()[0].split() == ["case", column]
    n = len(pattern.split(","))
    skipped = 1 if column == "optax" else 0  # optax documents other defaults: SKIP
    last = out.rstrip().splitlines()[-1]
    m = re.fullmatch(
        r"(\d+) cells?: (\d+) ran \((\d+) PASS, (\d+) ERRATUM, 0 FAIL\), (\d+) skipped.*", last
    )
    assert m, last
    cells, ran, passed, errata, skips = map(int, m.groups())
    assert (cells, ran, passed + errata, skips) == (n, n - skipped, n - skipped, skipped), last
    if skipped:
        assert last.endswith(f"({skipped} not supported by the target)")


def test_entry_point_plugins_are_loaded(monkeypatch, capsys):
    import importlib.metadata

    loaded = []

    class EntryPoint:
        name, value = "ep_port", "ep_port.conformance"

        def load(self):
            loaded.append(self.name)
            register_target("ep_port", lambda: _Radius("ep_port", 1.0))

    def entry_points(group):
        return [EntryPoint()] if group == "refimpl.conformance" else []

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(targets.base, "_FACTORIES", {})  # the registration ends with the test
    assert main(["--target", "ep_port"], cases=[BALL]) == 0
    assert loaded == ["ep_port"]
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["case", "ep_port"]
    assert out.rstrip().splitlines()[-1] == "1 cell: 1 ran (1 PASS, 0 ERRATUM, 0 FAIL), 0 skipped"
