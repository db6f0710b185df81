"""gridbot works as an installed package, not only from the source tree.

A wheel is built with `pip wheel . --no-deps` from a copy of the checkout and installed into a fresh
virtualenv outside it; from an empty directory, `gridbot demo` plays its day and `gridbot init &&
gridbot import --example` loads the packaged roster. The installed files are then read: no module
imports `tests` (not installed), and no module of `storage/` imports `bot` (storage is the lower
layer).

The new virtualenv gets its third-party libraries from the one running the tests (a folder of
links to its site-packages, gridbot itself left out), so the test needs no network and takes
seconds; pip still checks the wheel's declared dependencies against them (`--no-index`, no
`--no-deps`).
"""

from __future__ import annotations

import os
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "handlers", "scheduler", "storage", "nlp")
IMPORT = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_][\w.]*)", re.MULTILINE)

def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, encoding="utf-8", timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd)} exited {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GRIDBOT_", "PYTHON", "VIRTUAL_ENV", "PIP_"))}
    return {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1", **extra}


def _third_party(dest: Path) -> Path:
    """A folder of links to this environment's installed libraries, without gridbot's own."""
    dest.mkdir()
    ours = {*PACKAGES, "tests", "benchmarks"}
    for sp in {Path(p) for p in site.getsitepackages()}:
        for entry in sp.iterdir():
            name = entry.name
            if (name in ours or name.startswith(("__editable__", "gridbot-", "gridbot.")) or name.endswith(".pth")
                    or name == "__pycache__" or (dest / name).exists()):
                continue
            (dest / name).symlink_to(entry)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    """gridbot built as a wheel and installed into a fresh virtualenv outside the checkout."""
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"  # a copy, so the build leaves nothing in the checkout (build/, *.egg-info)
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, src / pkg, ignore=ignore)
    env = _clean_env()
    wheels = tmp / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q",
          "-w", str(wheels)], cwd=tmp, env=env)
    (wheel,) = wheels.glob("gridbot-*.whl")

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp, env=env)
    py = venv / "bin" / "python"
    purelib = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=tmp, env=env).stdout.strip()).resolve()
    libs = _third_party(tmp / "libs")
    (purelib / "gridbot-test-libs.pth").write_text(f"{libs}\n")
    # This environment's pip, installing into the new one: no index, the dependencies checked.
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-index", "-q", str(wheel)],
         cwd=tmp, env=env)
    work = tmp / "work"
    work.mkdir()
    return {"python": py, "gridbot": venv / "bin" / "gridbot", "purelib": purelib, "work": work}


def test_installed_copy_does_not_come_from_the_checkout(installed):
    out = _run([str(installed["python"]), "-c", "import bot, storage; print(bot.__file__); print(storage.__file__)"],
               cwd=installed["work"], env=_clean_env())
    for line in out.stdout.split():
        assert Path(line).resolve().is_relative_to(installed["purelib"]), line
    assert not (installed["purelib"] / "tests").exists() and not (installed["purelib"] / "benchmarks").exists()


def test_installed_demo_plays_the_day(installed):
    out = _run([str(installed["gridbot"]), "demo"], cwd=installed["work"], env=_clean_env(), timeout=600).stdout
    for want in ("== gridbot demo: 成丰社区", "每日报平安提醒", "已记录", "【发热预警 E1】", "收到 E1",
                 "【买菜需求 R1】", "今日未报", "台账", "== end of the day =="):
        assert want in out, want
    assert not list(installed["work"].iterdir()), "the demo left files in the working directory"


def test_installed_init_and_import_the_packaged_roster(installed, tmp_path):
    env = _clean_env(GRIDBOT_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/gridbot.db",
                     GRIDBOT_CONFIG=str(tmp_path / "none.toml"))
    gridbot, work = str(installed["gridbot"]), installed["work"]
    roster = _run([gridbot, "demo", "--roster-path"], cwd=work, env=env).stdout.strip()
    assert Path(roster).resolve().is_relative_to(installed["purelib"]) and Path(roster).is_file(), roster
    _run([gridbot, "init"], cwd=work, env=env)
    first = _run([gridbot, "import", roster], cwd=work, env=env).stdout
    assert "居民" in first
    # --example is the same roster with its quarantine dates moved to today: those rows change once.
    moved = _run([gridbot, "import", "--example"], cwd=work, env=env).stdout
    assert "平移" in moved or "没有变化" in moved
    again = _run([gridbot, "import", "--example"], cwd=work, env=env).stdout
    assert "没有变化" in again
    bench = subprocess.run([gridbot, "bench", "parse"], cwd=work, env=env, capture_output=True, text=True,
                           timeout=120)
    assert bench.returncode == 2 and "source checkout" in bench.stderr, bench.stderr


def _imports(path: Path) -> set[str]:
    return {m.split(".")[0] for m in IMPORT.findall(path.read_text(encoding="utf-8"))}


def _modules(top: Path, package: str) -> list[Path]:
    return sorted(p for p in (top / package).rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("where", ["checkout", "installed"])
def test_layering_of_the_installed_modules(where, request):
    top = ROOT if where == "checkout" else request.getfixturevalue("installed")["purelib"]
    modules = [p for pkg in PACKAGES for p in _modules(top, pkg)]
    assert len(modules) > 40, modules
    # (`gridbot bench` loads benchmarks/ only after finding a source checkout, which has tests/ too.)
    imports_tests = [str(p.relative_to(top)) for p in modules if "tests" in _imports(p)]
    assert imports_tests == [], f"installed modules import tests/ (not installed): {imports_tests}"
    above = {"bot", "handlers", "scheduler"}
    storage_bot = [str(p.relative_to(top)) for p in _modules(top, "storage") if _imports(p) & above]
    assert storage_bot == [], f"storage/ must not import the layers above it: {storage_bot}"


def test_bench_from_the_checkout_lists_and_refuses_unknown(capsys):
    from bot.cli import main, source_checkout

    assert source_checkout() == ROOT
    assert main(["bench"]) == 0
    assert capsys.readouterr().out.split() == ["callbacks", "import", "parse", "reminders", "wave"]
    assert main(["bench", "no-such-bench"]) == 2
    assert "choose from" in capsys.readouterr().err
