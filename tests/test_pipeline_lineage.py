"""Lineage: each dvc.yaml stage's ``deps`` cover all the project code the stage runs, and the
pipeline's own stage DAG (``flows.stages.dag``, which orders the plan) is the one they declare.

Every stage of a tiny project runs as ``dvc repro`` runs it (``python -m flows.stages …`` in
the project), and the project modules it loaded (under ``flows/`` and ``rbmdiff/``) must each
be a dependency of that stage, itself or through a folder.  A stage that loaded the Gibbs
kernel's module or a compiled extension must also depend on the kernel's C source,
``rbmdiff/_native``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flows.ledger import Ledger
from flows.stages import dag
from rbmdiff.errors import RbmdiffError
from tests.project import SOURCE, dvc_env, make_project

# the modules that load the compiled Gibbs sweep, and the folder of its C source
KERNEL_MODULES = ("rbmdiff.native", "rbmdiff.gibbs_kernels")
KERNEL_SOURCE = "rbmdiff/_native"

RUN_AND_LIST = """
import json, sys
from pathlib import Path
from flows.stages.__main__ import main
code = main(sys.argv[1:])
root = Path.cwd().resolve()
files = {}
for name, module in list(sys.modules.items()):
    path = getattr(module, "__file__", None)
    if path and name.split(".")[0] in ("flows", "rbmdiff", "__main__") \
            and Path(path).resolve().is_relative_to(root):
        files[name] = Path(path).resolve().relative_to(root).as_posix()
print(json.dumps({"code": code, "modules": files}))
"""


def stage_commands(dvc_yaml: dict, params: dict) -> dict[str, tuple[list[str], list[str]]]:
    """stage name -> (its `python -m flows.stages` arguments, its deps), foreach expanded."""
    out = {}
    for name, stage in dvc_yaml["stages"].items():
        if "foreach" in stage:  # foreach: ${sample} over the routes of params.yaml
            for route in params["sample"]:
                out[f"{name}@{route}"] = ([name, route], stage["do"]["deps"])
        else:
            out[name] = ([name], stage["deps"])
    return out


def stage_paths(dvc_yaml: dict, params: dict) -> dict[str, tuple[list[str], list[str]]]:
    """stage name -> (its deps, its outs, metrics and plots), foreach expanded."""
    out = {}
    for name, stage in dvc_yaml["stages"].items():
        for route in params["sample"] if "foreach" in stage else [None]:
            body = stage["do"] if route else stage
            paths = {key: [(next(iter(p)) if isinstance(p, dict) else p).replace(
                "${key}", route or "") for p in body.get(key, [])]
                for key in ("deps", "outs", "metrics", "plots")}
            out[f"{name}@{route}" if route else name] = (
                paths["deps"], paths["outs"] + paths["metrics"] + paths["plots"])
    return out


def test_the_stage_dag_is_the_one_dvc_yaml_declares() -> None:
    """B reads from A where one of B's deps is one of A's outs, or one lies under the other
    (report's ``reports/runs`` holds every route's ``reports/runs/<route>``)."""
    spec = yaml.safe_load((SOURCE / "dvc.yaml").read_text())
    params = yaml.safe_load((SOURCE / "params.yaml").read_text())
    stages = stage_paths(spec, params)
    overlap = lambda a, b: a == b or a.startswith(b + "/") or b.startswith(a + "/")  # noqa: E731
    declared = {name: {up for up, (_, outs) in stages.items()
                       if any(overlap(d, o) for d in deps for o in outs)}
                for name, (deps, _) in stages.items()}
    ours = dag(params["sample"])
    assert list(ours) == list(stages)  # dvc.yaml lists them upstream first
    assert {name: set(ups) for name, ups in ours.items()} == declared


def test_the_plan_marks_every_stage_downstream_of_a_stale_one(tmp_path, monkeypatch) -> None:
    """Freshness is DVC's (``dvc status``, faked here); order and downstream are the DAG's."""
    (tmp_path / ".dvc").mkdir()
    shutil.copy(SOURCE / "params.yaml", tmp_path)
    routes = [f"sample@{r}" for r in yaml.safe_load((SOURCE / "params.yaml").read_text())["sample"]]
    why = [{"changed deps": {"params.yaml": ["embed.seed"]}}]

    class Repo:
        def status(self) -> dict:
            return {"dvc.yaml:embed": why}

    monkeypatch.setattr(Ledger, "_repo", lambda self: contextlib.nullcontext(Repo()))
    plan = Ledger(tmp_path).plan()
    assert plan.order == ["prepare", "train", "embed", *routes, "report"]
    assert plan.stale == ["embed", *routes, "report"]
    assert plan.fresh == ["prepare", "train"]
    assert plan.reasons == {"embed": why, **{s: ["downstream of a stale stage"]
                                             for s in [*routes, "report"]}}
    plan = Ledger(tmp_path).plan(targets=[routes[0]])
    assert (plan.order, plan.stale) == (["prepare", "train", "embed", routes[0]],
                                        ["embed", routes[0]])
    plan = Ledger(tmp_path).plan(targets=["train"], force=True)
    assert plan.stale == plan.order == ["prepare", "train"]
    assert plan.reasons == {"prepare": ["forced"], "train": ["forced"]}
    with pytest.raises(RbmdiffError, match=r"no stage 'sample' in dvc\.yaml"):
        Ledger(tmp_path).plan(targets=["sample"])


def uncovered(files: list[str], deps: list[str]) -> list[str]:
    """The files no dependency covers (a dep covers itself and everything under it)."""
    roots = [d.rstrip("/") for d in deps]
    return [f for f in files if not any(f == d or f.startswith(d + "/") for d in roots)]


def test_uncovered_sees_files_and_folders() -> None:
    deps = ["flows/stages/sample.py", "rbmdiff/samplers", "rbmdiff/_native/"]
    files = ["flows/stages/sample.py", "rbmdiff/samplers/gibbs.py", "rbmdiff/_native/x.c",
             "rbmdiff/samplers_extra.py", "flows/stages/train.py", "rbmdiff/rbm.py"]
    assert uncovered(files, deps) == ["rbmdiff/samplers_extra.py", "flows/stages/train.py",
                                      "rbmdiff/rbm.py"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("lineage") / "rbmdiff")


@pytest.mark.slow
def test_every_stage_depends_on_all_the_project_code_it_runs(project: Path) -> None:
    spec = yaml.safe_load((SOURCE / "dvc.yaml").read_text())
    params = yaml.safe_load((project / "params.yaml").read_text())
    missing = {}
    for stage, (argv, deps) in stage_commands(spec, params).items():  # in pipeline order
        done = subprocess.run([sys.executable, "-c", RUN_AND_LIST, *argv, "--quiet"],
                              cwd=project, env=dvc_env(), capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(done.stdout.strip().splitlines()[-1])
        assert report["code"] == 0, (stage, done.stderr[-3000:])
        modules = report["modules"]
        assert "flows/stages/__main__.py" in modules.values()
        files = sorted(f for f in modules.values() if f.endswith(".py"))
        compiled = [f for f in modules.values() if not f.endswith(".py")]  # an extension
        if compiled or any(name in modules for name in KERNEL_MODULES):
            files.append(KERNEL_SOURCE + "/")
        gaps = uncovered(files, deps)
        if gaps:
            missing[stage] = gaps
    assert not missing, f"dvc.yaml deps miss code the stages run: {missing}"
