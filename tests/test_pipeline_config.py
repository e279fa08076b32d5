"""params.yaml validation and dvc.yaml's declarations (fast: no stage runs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from flows.config import ParamsError, check_samplers, load_params
from flows.layout import Layout
from tests.project import SOURCE, TINY, merge

PARAMS = yaml.safe_load((SOURCE / "params.yaml").read_text())
DVC = yaml.safe_load((SOURCE / "dvc.yaml").read_text())


def write(tmp_path: Path, params: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def error_for(tmp_path: Path, params: dict) -> str:
    path = write(tmp_path, params)
    with pytest.raises(ParamsError) as info:
        check_samplers(load_params(path), path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_default_and_tiny_params_validate(tmp_path: Path) -> None:
    params = load_params(SOURCE / "params.yaml")
    check_samplers(params)
    assert set(params.sample) == {"sde", "ode", "gibbs", "anneal", "qpu"}
    assert params.data.name == "digits" and params.embed.mock is None  # embedded defaults
    seeds = [params.data.seed, params.train.seed, params.embed.seed, params.report.seed,
             *(r.seed for r in params.sample.values())]
    assert len(set(seeds[4:])) == len(params.sample)  # every sampler run its own stream
    tiny = load_params(write(tmp_path, merge(PARAMS, TINY)))
    check_samplers(tiny)
    assert len(tiny.campaign.sweep.settings()) == 2


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda p: p["train"].update(n_hiden=3), "train.n_hiden: unknown key; train takes"),
        (lambda p: p["train"].pop("steps"), "train.steps: missing"),
        (lambda p: p["train"].update(stepz=p["train"].pop("steps")),  # misspelt, not missing
         "train.stepz: unknown key; train takes"),
        (lambda p: p["train"].update(n_hidden=0), "train.n_hidden: Input should be greater"),
        (lambda p: p["train"].update(method="adam"), "train.method: Input should be"),
        (lambda p: p.update(extra={}), "extra: unknown key; params takes data, train"),
        (lambda p: p["sample"]["sde"].update(stepz=3), "sample.sde: sampler 'sde' has no "
         "parameter stepz"),
        (lambda p: p["sample"]["gibbs"].pop("seed"), "sample.gibbs.seed: missing"),
        (lambda p: p["sample"].update(mcmc={"seed": 1, "num_samples": 2}),
         "sample.mcmc: unknown sampler"),
        (lambda p: p["sample"]["qpu"].update(topology="zephyr"),
         "sample.qpu.topology: set the topology in embed.topology"),
        (lambda p: p["campaign"]["sweep"].update(annealing_time=[]),
         "campaign.sweep.annealing_time: List should have at least 1 item"),
        (lambda p: p["campaign"]["fixed"].update(num_read=3), "campaign.fixed: sampler 'qpu' "
         "has no parameter num_read"),
    ],
)
def test_a_wrong_key_or_value_is_one_line_naming_it(tmp_path: Path, edit, expected) -> None:
    params = merge(PARAMS, {})
    edit(params)
    assert expected in error_for(tmp_path, params)


def test_unreadable_params_file(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match=r"params.yaml: not valid YAML \(line \d+\)"):
        load_params(path)
    with pytest.raises(ParamsError, match="no such file"):
        load_params(tmp_path / "absent.yaml")


def _stage(name: str) -> dict:
    stage = DVC["stages"][name]
    return stage.get("do", stage)


def test_dvc_stages_declare_exactly_the_sections_they_read() -> None:
    assert list(DVC["stages"]) == ["prepare", "train", "embed", "sample", "report"]
    expected = {"prepare": ["data"], "train": ["train"], "embed": ["embed", "train.n_hidden"],
                "sample": ["sample.${key}"], "report": ["report", "sample"]}
    for name, params in expected.items():
        assert _stage(name)["params"] == params, name
        assert _stage(name)["cmd"].startswith(f"python -m flows.stages {name}")
        assert f"flows/stages/{name}.py" in _stage(name)["deps"]
    assert DVC["stages"]["sample"]["foreach"] == "${sample}"


def test_dvc_outputs_are_the_layout_paths() -> None:
    layout = Layout(Path("."))

    def paths(stage: str, kind: str) -> set[str]:
        return {next(iter(o)) if isinstance(o, dict) else o for o in _stage(stage).get(kind, [])}

    rel = lambda p: str(p.relative_to("."))  # noqa: E731
    assert paths("prepare", "outs") == {rel(layout.prepared)}
    assert paths("train", "outs") == {rel(layout.model), rel(layout.training)}
    assert paths("embed", "outs") == {rel(layout.embedding)}
    assert paths("sample", "outs") == {rel(layout.run("${key}"))}
    # samples.parquet is not an output: its wall times are this machine's
    assert paths("report", "outs") == {rel(layout.metrics),
                                       rel(layout.metrics.with_name("report.md"))}
    assert paths("report", "metrics") == {rel(layout.headline)}
    assert paths("report", "plots") == {rel(layout.figures / f) for f in (
        "samples_grid.png", "quality_vs_cost.png", "training.png")}
    # every code file a stage lists exists (a typo would make DVC fail on a fresh clone)
    for name in DVC["stages"]:
        for dep in _stage(name)["deps"]:
            if dep.startswith(("flows/", "rbmdiff/")):
                assert (SOURCE / dep).exists(), dep


def test_stage_cli_reports_a_params_error_in_one_line(tmp_path: Path, capsys) -> None:
    from flows.stages.__main__ import main

    params = merge(PARAMS, {})
    params["train"]["n_hiden"] = 3
    path = write(tmp_path, params)
    assert main(["train", "--params", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("stage train: error: ") and "train.n_hiden: unknown key" in err
    assert "\n" not in err


def test_dvc_exp_set_param_rewrites_only_the_value_it_sets(tmp_path: Path) -> None:
    """`dvc exp run -S sample.gibbs.num_sweeps=50` rewrites params.yaml through DVC's YAML
    round trip: the file must come back line for line but for the value set."""
    hydra = pytest.importorskip("dvc.utils.hydra")
    path = tmp_path / "params.yaml"
    shutil.copy2(SOURCE / "params.yaml", path)
    before = path.read_text().splitlines()
    hydra.apply_overrides(path, ["sample.gibbs.num_sweeps=50"])
    after = path.read_text().splitlines()
    assert len(after) == len(before)
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [("    num_sweeps: 200", "    num_sweeps: 50")]


def test_training_settings_are_declared_once() -> None:
    """params.yaml's train section is rbmdiff.options' TrainOptions with every key required
    (an empty value is written, not left out), and `rbmdiff train` takes each of its fields
    as an option that defaults to the model's own default; m_method's choices are the
    posterior score's ways of computing m less gibbs (no gradient); TrainConfig's defaults
    of the settings they share are TrainOptions'."""
    import dataclasses

    from flows.config import TrainParams
    from rbmdiff.cli import build_parser
    from rbmdiff.options import TrainOptions, choices
    from rbmdiff.score import M_METHODS
    from rbmdiff.train import TrainConfig

    assert all(field.is_required() for field in TrainParams.model_fields.values())
    assert choices("m_method") == tuple(m for m in M_METHODS if m != "gibbs")
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    actions = {a.dest: a for a in train._actions}
    for name in TrainOptions.model_fields:
        assert actions[name].option_strings == ["--" + name.replace("_", "-")]
        assert actions[name].default is None  # given or not: TrainOptions' default applies
    shared = {f.name: f.default for f in dataclasses.fields(TrainConfig)
              if f.name in TrainOptions.model_fields}
    for name, default in shared.items():
        model = TrainOptions.model_fields[name]
        assert model.is_required() or model.default in (None, default), name


@pytest.mark.parametrize("given, expected", [(None, True), ("thermal", "thermal")])
def test_qpu_route_on_a_mock_embedding_keeps_the_named_mock_with_a_token(
        tmp_path, monkeypatch, given, expected):
    """Embedded on the mock's graph, the qpu route stays on a mock when a token appears: the
    one sample.qpu.mock names, else the default mock."""
    import json

    import rbmdiff.samplers.qpu as qpu
    from flows.config import RouteParams
    from flows.layout import Layout
    from flows.stages.sample import sampler_kwargs

    layout = Layout(tmp_path)
    layout.solver_info.parent.mkdir(parents=True)
    layout.solver_info.write_text(json.dumps({"topology": "pegasus", "shape": [8],
                                              "mock": True}))
    monkeypatch.setattr(qpu, "has_token", lambda: True)
    extra = {"mock": given} if given else {}
    kwargs = sampler_kwargs("qpu", RouteParams(seed=0, num_samples=1, **extra), layout, None)
    assert kwargs["mock"] == expected and kwargs["mock_shape"] == [8]
