"""The platform installed as a wheel: it runs a study from any working directory, writes only under
the study's platform folder, and never into its own source tree or its installation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


def _tree_state(root: Path) -> dict[str, int]:
    """Every file of the source tree with its modification time (the git and virtual env folders aside)."""
    state = {}
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if name not in (".git", ".venv", ".pytest_cache", ".ruff_cache")]
        for name in files:
            path = Path(folder) / name
            state[str(path.relative_to(root))] = path.lstat().st_mtime_ns
    return state


def _copy_sources(destination: Path) -> None:
    """The files git knows of (committed or not, ignored ones left out), links kept as links."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPOSITORY_ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, names):
        source = REPOSITORY_ROOT / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)


@pytest.mark.slow
def test_a_wheel_runs_a_study_from_an_unrelated_folder_and_writes_only_under_its_platform_folder(tmp_path):
    before = _tree_state(REPOSITORY_ROOT)
    sources, dist = tmp_path / "sources", tmp_path / "dist"
    _copy_sources(sources)  # built from a copy: an in-tree build would write build/ and egg-info here
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(dist), str(sources)], check=True, capture_output=True, timeout=300)
    wheel = next(dist.glob("digital_biomarkers-*.whl"))
    # A fresh environment with the wheel alone; the dependencies are this environment's, reached
    # through a path file (which does not activate this checkout's editable install).
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install", "--quiet",
                    "--no-deps", str(wheel)], check=True, capture_output=True, timeout=300)
    site = Path(subprocess.run([env / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    installed_before = _tree_state(site / "pipelines")

    work = tmp_path / "somewhere" / "else"
    work.mkdir(parents=True)
    study = work / "study.yaml"
    study.write_text((REPOSITORY_ROOT / "studies" / "demo" / "study.yaml").read_text()
                     .replace("data_root: ../../data/demo", "data_root: my_study"))
    environment = {**os.environ, "COLUMNS": "300", "NO_COLOR": "1", "TERM": "dumb"}
    environment.pop("PYTHONPATH", None)

    def biomarkers(*arguments: str) -> str:
        done = subprocess.run([env / "bin" / "biomarkers", *arguments], cwd=work, env=environment,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"biomarkers {' '.join(arguments)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    where = subprocess.run([env / "bin" / "python", "-c", "import pipelines, adapters; print(pipelines.__file__)"],
                           cwd=work, env=environment, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site)), where
    biomarkers("generate-demo", "my_study", "--seed", "3", "--subjects", "10", "--days", "3")
    biomarkers("ingest", str(study))
    biomarkers("build-features", str(study))
    output = biomarkers("materialize", str(study))
    assert "project demo" in output
    biomarkers("train", str(study), "--model", "hospitalization_risk")
    assert "demo-hospitalization_risk" in biomarkers("lineage", "demo-hospitalization_risk@candidate",
                                                     "--study", str(study))

    platform = work / "my_study" / ".platform"
    for produced in ("curated", "feature_tables", "feast/registry.db", "feast/online_store.db",
                     "feast/feature_store.yaml", "feast/definitions.py", "mlflow.db", "mlartifacts", "catalog.db"):
        assert (platform / produced).exists(), produced
    assert sorted(path.name for path in work.iterdir()) == ["my_study", "study.yaml"]
    assert _tree_state(REPOSITORY_ROOT) == before, "the source tree changed"
    changed = {name for name, stamp in _tree_state(site / "pipelines").items()
               if installed_before.get(name) != stamp and "__pycache__" not in name}
    assert not changed, f"written into the installation: {sorted(changed)}"
