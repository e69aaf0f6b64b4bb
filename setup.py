"""Build hook: copy the top-level ``conf/`` into the package as ``stitchwork/conf``.

``conf/`` stays the single source of the Hydra configs; a wheel carries a copy so the apps
find their configs when installed without the repository (see ``apps/config.py:conf_dir``).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithConf(build_py):
    """``build_py`` that also places ``conf/`` at ``<build_lib>/stitchwork/conf``."""

    def run(self) -> None:
        super().run()
        source = Path(__file__).resolve().parent / "conf"
        target = Path(self.build_lib) / "stitchwork" / "conf"
        if source.is_dir() and not getattr(self, "editable_mode", False):
            shutil.rmtree(target, ignore_errors=True)  # no stale yaml from an earlier build
            shutil.copytree(source, target, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildPyWithConf})
